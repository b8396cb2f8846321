"""The ``qudata`` command: a thin layer that parses options, calls the library, prints the account.

Errors a user can cause are printed as one ``Error: ...`` line with exit code
2 (usage, configuration, output folder) or 1 (bad data under ``on_error:
fail``), never as a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from qudata import __version__
from qudata.errors import QudataError

__all__ = ["cli", "main"]


def _fail(exc: QudataError) -> None:
    click.echo(f"Error: {exc}", err=True)
    sys.exit(exc.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qudata")
def cli() -> None:
    """qudata: turn processed documents into LLM training data."""


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    "output_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Dataset folder to write (refused if not empty, unless --overwrite).",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML configuration file (sections: input, pack, quality, dedup, output).",
)
@click.option(
    "-f",
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(["chatml", "jsonl", "plain"]),
    help="Format to write; repeat for several. Default: pack.formats (all three).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    default=None,
    help="Replace a non-empty output folder, only once the new run completed.",
)
@click.option(
    "--on-error",
    type=click.Choice(["skip", "fail"]),
    default=None,
    help="Bad input record: skip it into rejects.jsonl (default) or stop with exit 1.",
)
@click.option("--text-key", default=None, help="Input field holding the text (default: text).")
@click.option("--id-key", default=None, help="Input field holding the id (default: id).")
@click.option("--quiet", "-q", is_flag=True, help="Print no progress and no summary.")
def pack(
    inputs: tuple[str, ...],
    output_dir: str,
    config_path: str | None,
    formats: tuple[str, ...],
    overwrite: bool | None,
    on_error: str | None,
    text_key: str | None,
    id_key: str | None,
    quiet: bool,
) -> None:
    """Pack INPUTS (JSONL[.gz|.zst], JSON arrays, Parquet, folders of .txt/.md, globs, or - for
    standard input) into a dataset folder: one subfolder per format, manifest.json (the
    account of every document) and rejects.jsonl (every dropped document with its reason).
    """
    from qudata.config import load_config
    from qudata.pipeline import pack_dataset

    overrides: dict[str, Any] = {}
    section = {
        k: v
        for k, v in {"on_error": on_error, "text_key": text_key, "id_key": id_key}.items()
        if v is not None
    }
    if section:
        overrides["input"] = section
    try:
        cfg = load_config(config_path, overrides=overrides)
        with _progress(quiet) as on_progress:
            report = pack_dataset(
                inputs,
                output_dir,
                config=cfg,
                formats=formats or None,
                overwrite=overwrite,
                on_progress=on_progress,
            )
    except QudataError as exc:
        _fail(exc)
    if not quiet:
        from qudata.summary import print_summary

        print_summary(report)


class _progress:
    """A progress line on a terminal (standard error), nothing otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self._progress: Any = None

    def __enter__(self) -> Callable[[int], None] | None:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.completed:,} documents read"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        task = self._progress.add_task("pack", total=None)
        return lambda n: self._progress.update(task, completed=n)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def main() -> None:
    """Entry point of the ``qudata`` console script."""
    cli(prog_name="qudata")
