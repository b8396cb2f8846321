"""``qudata validate``: check files against the rules of a format (any format with rules)."""

from __future__ import annotations

import sys

import click

from qudata.cli_args import default
from qudata.cli_exit import clean_end
from qudata.config import QualityConfig
from qudata.pack.plain_syntax import PLAIN_SEPARATOR
from qudata.quality.validate import file_rules, validated_formats

__all__ = ["validate"]


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(validated_formats()),
    help="The format the files should be in.",
)
@click.option(
    "--max-tokens",
    type=int,
    default=None,
    help="ChatML: report messages with more tokens than this.",
)
@click.option(
    "--tokenizer",
    default=default(QualityConfig, "tokenizer"),
    show_default=True,
    help="Token counter for ChatML token statistics and --max-tokens.",
)
@click.option(
    "--separator",
    default=PLAIN_SEPARATOR,
    show_default=True,
    help="Plain text: the separator between blocks (escapes like \\n allowed).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
def validate(
    files: tuple[str, ...],
    fmt: str,
    max_tokens: int | None,
    tokenizer: str,
    separator: str,
    as_json: bool,
) -> None:
    """Check every record of FILES (any codec: .gz, .zst; or Parquet) against the rules of
    a format. Prints each problem with its line, code, field path and a hint, then a summary
    by code. Exit 0 only when every file is clean.
    """
    from qudata.console import print_validation
    from qudata.quality.tokens import get_token_counter
    from qudata.quality.validate import validate_file

    with clean_end():
        counter = get_token_counter(tokenizer) if file_rules(fmt).counts_tokens else None
        results = [
            validate_file(
                path,
                fmt,
                max_tokens=max_tokens,
                count_tokens=counter.count if counter is not None else None,
                separator=separator.encode().decode("unicode_escape"),
            )
            for path in files
        ]
    print_validation(results, as_json=as_json)
    sys.exit(0 if all(r.ok for r in results) else 1)
