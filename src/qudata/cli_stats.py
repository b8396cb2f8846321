"""``qudata stats``: how many documents and tokens survive, at several quality thresholds."""

from __future__ import annotations

from typing import Any

import click

from qudata.cli_args import COLUMN_OPTION, choices, config_overrides, default, parse_columns
from qudata.cli_exit import clean_end
from qudata.config import DedupConfig, InputConfig, load_config

__all__ = ["print_stats_of", "stats"]


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML configuration file (input, quality and dedup sections apply).",
)
@click.option("--tokenizer", default=None, help="Token counter (as for pack).")
@click.option(
    "--dedup",
    type=choices(DedupConfig, "method"),
    default=None,
    help=f"Duplicate removal before counting (default: {default(DedupConfig, 'method')}).",
)
@click.option(
    "--text-key",
    default=None,
    help=f"Input field holding the text (default: {default(InputConfig, 'text_key')}).",
)
@COLUMN_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def stats(
    inputs: tuple[str, ...],
    config_path: str | None,
    tokenizer: str | None,
    dedup: str | None,
    text_key: str | None,
    columns: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show how many documents and tokens of INPUTS survive at several quality thresholds,
    after removing invalid records and duplicates. Writes nothing.
    """
    overrides = config_overrides(
        input={"text_key": text_key, "columns": parse_columns(columns)},
        quality={"tokenizer": tokenizer},
        dedup={"method": dedup},
    )
    print_stats_of(inputs, config_path, overrides, as_json=as_json)


def print_stats_of(
    inputs: tuple[str, ...],
    config_path: str | None,
    overrides: dict[str, Any],
    *,
    as_json: bool = False,
) -> None:
    """The figures of ``inputs`` (``stats``, and ``pack --dry-run``), as a table or JSON."""
    from qudata.console import print_stats
    from qudata.stats import collect_stats

    with clean_end():
        result = collect_stats(inputs, config=load_config(config_path, overrides=overrides))
    if as_json:
        import orjson

        click.echo(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_stats(result)
