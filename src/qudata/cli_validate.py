"""``qudata validate``: check files against the rules of a format (any format with rules),
or a published dataset folder against its manifest (and a tokenizer and template)."""

from __future__ import annotations

import os
import sys

import click

from qudata.cli_args import default
from qudata.cli_exit import clean_end
from qudata.config import QualityConfig
from qudata.errors import ConfigError
from qudata.pack.plain_syntax import PLAIN_SEPARATOR
from qudata.quality.validate import file_rules, validated_formats

__all__ = ["validate"]


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--format",
    "fmt",
    default=None,
    type=click.Choice(validated_formats()),
    help="The format the files should be in (not for a dataset folder).",
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
    help="Token counter for ChatML token statistics and --max-tokens. With a dataset "
    "folder: the tokenizer its packed and megatron files must have been made with "
    "(checked only when given).",
)
@click.option(
    "--template",
    default=None,
    help="With a dataset folder: the chat template its packed files must have been made "
    "with (chatml, a path or a tokenizer_config.json).",
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
    fmt: str | None,
    max_tokens: int | None,
    tokenizer: str,
    template: str | None,
    separator: str,
    as_json: bool,
) -> None:
    """Check every record of FILES (any codec: .gz, .zst; or Parquet) against the rules of
    a format. Prints each problem with its line, code, field path and a hint, then a summary
    by code. Exit 0 only when every file is clean.

    Given a dataset folder that qudata wrote (it holds manifest.json), check every file it
    lists against the manifest (sha256, bytes, records, tokens), each data file's records
    against its format's rules, and, with --tokenizer and/or --template, its packed and
    megatron files against them.
    """
    from qudata.quality.validate_dataset import is_dataset

    if len(files) == 1 and is_dataset(files[0]):
        source = click.get_current_context().get_parameter_source("tokenizer")
        given = source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")
        with clean_end():
            if fmt is not None or max_tokens is not None:
                raise ConfigError(
                    "--format and --max-tokens apply to files: a dataset folder is checked "
                    "with the rules of each of its formats"
                )
        _validate_folder(files[0], tokenizer if given else None, template, as_json)
        return
    from qudata.console import print_validation
    from qudata.quality.tokens import get_token_counter
    from qudata.quality.validate import validate_file

    with clean_end():
        folders = [path for path in files if os.path.isdir(path)]
        if folders:
            raise ConfigError(
                f"{folders[0]}: a folder without manifest.json is not a qudata dataset "
                "(give one dataset folder, or files with --format)"
            )
        if fmt is None:
            raise ConfigError(
                "--format is required for files (or give one dataset folder holding manifest.json)"
            )
        if template is not None:
            raise ConfigError("--template applies to a dataset folder")
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


def _validate_folder(root: str, tokenizer: str | None, template: str | None, as_json: bool) -> None:
    from qudata.console_dataset import print_dataset_validation
    from qudata.quality.validate_dataset import validate_dataset

    with clean_end():
        result = validate_dataset(root, tokenizer=tokenizer, template=template)
    print_dataset_validation(result, as_json=as_json)
    sys.exit(0 if result.ok else 1)
