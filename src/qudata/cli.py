"""The ``qudata`` command: a thin layer that parses options, calls the library, prints the account.

Errors a user can cause are printed as one ``Error: ...`` line with exit code
2 (usage, configuration, output folder) or 1 (bad data under ``on_error:
fail``), never as a traceback.
"""

from __future__ import annotations

import shlex
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from qudata import __version__
from qudata.errors import ConfigError, OutputError, QudataError, WriteError
from qudata.pack.registry import FORMATTERS
from qudata.progress import TerminalProgress
from qudata.quality.validate_files import VALIDATED_FORMATS

__all__ = ["cli", "main"]


def _fail(exc: QudataError) -> None:
    click.echo(f"Error: {exc}", err=True)
    sys.exit(exc.exit_code)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (exit 128 + the signal number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextmanager
def _clean_end(output_dir: str | None = None) -> Iterator[None]:
    """One line for every way a command can fail: a qudata error (its exit code), a
    system error (exit 1), an interrupt (130 for Ctrl-C, 143 for SIGTERM). The library
    removes its staging folder and puts no half dataset in place before this prints."""
    try:
        yield
    except QudataError as exc:
        _fail(exc)
    except KeyboardInterrupt as exc:
        done = "nothing was published" if output_dir is not None else "stopped"
        click.echo(f"Interrupted: {done}", err=True)
        sys.exit(128 + getattr(exc, "signum", signal.SIGINT))
    except OSError as exc:
        where = f" {_short(output_dir)}" if output_dir is not None else ""
        path = f" ({_short(str(exc.filename))})" if exc.filename else ""
        what = exc.strerror or type(exc).__name__
        _fail(WriteError(f"cannot complete{where}: {what}{path}"))
    except RecursionError:
        _fail(ConfigError("the input or configuration is nested too deeply"))


def _short(text: str, most: int = 120) -> str:
    return text if len(text) <= most else text[: most // 2] + "..." + text[-most // 2 :]


def _check_output_parent(output_dir: str) -> None:
    """``-o`` must be able to become a folder: its nearest existing ancestor is one."""
    path = Path(output_dir).absolute()
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputError(
                    f"{output_dir}: cannot be a folder: {ancestor} is a file, not a folder"
                )
            return


class _Group(click.Group):
    """Keeps the arguments it was given, for the dataset card's "made with" line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["qudata.argv"] = list(args)
        return super().parse_args(ctx, args)


#: Options that say how or where to run, not what to write: left out of the card's command
#: (with their values), so that any engine and any number of workers write the same card.
_HOW_OPTIONS = ("--workers", "--engine", "--ray-address")


def _command_line(output_dir: str) -> str:
    """The command as given, with the output folder elided and the options of
    ``_HOW_OPTIONS`` and ``--overwrite`` left out (so that the same job writes the same
    bytes into any folder, on any engine)."""
    given = click.get_current_context().find_root().meta.get("qudata.argv", [])
    argv: list[str] = []
    skip = False
    for arg in given:
        if skip:
            skip = False
        elif arg in ("--overwrite", "--resume"):  # how to write, not what: the same card
            continue
        elif arg in _HOW_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in _HOW_OPTIONS)):
            argv.append(arg)
    for i, arg in enumerate(argv):
        if arg in ("-o", "--output") and i + 1 < len(argv):
            argv[i + 1] = "OUT_DIR"
        elif arg.startswith("--output="):
            argv[i] = "--output=OUT_DIR"
    return "qudata " + shlex.join(argv)


#: ``--column NAME=KEY``, the same for ``pack`` and ``stats``
_COLUMN_OPTION = click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="NAME=KEY",
    help="Read qudata's field NAME from the file's KEY (input.columns), e.g. "
    "--column prompt=instruction --column response=output; repeat for several. Names: "
    "prompt, query, response, history, system, messages, tools, chosen, rejected, text, id.",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qudata")
def cli() -> None:
    """qudata: turn processed documents into LLM training data."""


@cli.command()
@click.argument("inputs", nargs=-1)
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
    type=click.Choice(list(FORMATTERS)),
    help="Format to write; repeat for several. Default: pack.formats (chatml, jsonl, plain).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    default=None,
    help="Replace the output folder if it is a qudata dataset, once the new run completed.",
)
@click.option(
    "--on-error",
    type=click.Choice(["skip", "fail"]),
    default=None,
    help="Bad input record: skip it into rejects.jsonl (default) or stop with exit 1.",
)
@click.option("--text-key", default=None, help="Input field holding the text (default: text).")
@click.option("--id-key", default=None, help="Input field holding the id (default: id).")
@_COLUMN_OPTION
@click.option(
    "--tokenizer",
    default=None,
    help="Token counter: cl100k_base (default, exact, offline), o200k_base, "
    "PATH/tokenizer.json, estimate (approximate) or none.",
)
@click.option(
    "--dedup",
    type=click.Choice(["none", "exact", "near"]),
    default=None,
    help="Duplicate removal (default: exact; near implies exact).",
)
@click.option(
    "--dedup-threshold",
    type=float,
    default=None,
    help="Jaccard similarity for near duplicates (default: 0.8).",
)
@click.option(
    "--dedup-memory",
    default=None,
    metavar="SIZE",
    help="Memory budget of the global dedup step, e.g. 256MB (default: 1GB).",
)
@click.option(
    "--min-quality",
    type=float,
    default=None,
    help="Drop documents whose quality_score is below this, before formatting.",
)
@click.option(
    "--split",
    "split_spec",
    default=None,
    metavar="NAME=FRACTION,...",
    help="Splits, e.g. train=0.98,validation=0.01,test=0.01 (default: train=1). "
    "A document's split is a seeded hash of its duplicate cluster.",
)
@click.option("--seed", type=int, default=None, help="Seed of splits and shuffling (default: 0).")
@click.option(
    "--shuffle/--no-shuffle",
    default=None,
    help="Shuffle records within each split, in bounded memory (spills to disk).",
)
@click.option(
    "--shard-size",
    default=None,
    metavar="SIZE",
    help="Start a new shard after this many bytes (uncompressed), e.g. 256MB.",
)
@click.option(
    "--shard-records", type=int, default=None, help="Start a new shard after this many records."
)
@click.option(
    "--compression",
    type=click.Choice(["none", "gzip", "zstd"]),
    default=None,
    help="Compress output files (.gz / .zst); Parquet compresses internally.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default=None,
    help="Where the pipeline runs: local (default: a process per CPU) or ray (Ray tasks, "
    "the same output; needs qudata[ray]).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Lanes of the local engine: this process and N-1 worker processes (default: the "
    "usable CPUs; 1: all in this process). The output does not depend on it.",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDRESS",
    help="Ray cluster to join (auto: the one started with 'ray start'); implies --engine ray. "
    "Default: a local Ray instance.",
)
@click.option(
    "--mix",
    "mix_specs",
    multiple=True,
    metavar="PATH=WEIGHT",
    help="Mix sources by their share of output tokens, e.g. --mix 'web/*.jsonl=0.7' "
    "--mix 'code/*.jsonl=0.3' (instead of INPUTS).",
)
@click.option(
    "--target-tokens",
    default=None,
    metavar="N",
    help="Tokens of the mix, e.g. 1B (default: every token of the scarcest source).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Write nothing; show how many documents and tokens survive (as 'stats').",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Take up the staging folder that a killed run into OUTPUT_DIR left: partitions it "
    "completed (checked by sha256) are not computed again; the output is the same.",
)
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
    columns: tuple[str, ...],
    tokenizer: str | None,
    dedup: str | None,
    dedup_threshold: float | None,
    dedup_memory: str | None,
    min_quality: float | None,
    split_spec: str | None,
    seed: int | None,
    shuffle: bool | None,
    shard_size: str | None,
    shard_records: int | None,
    compression: str | None,
    engine: str | None,
    workers: int | None,
    ray_address: str | None,
    mix_specs: tuple[str, ...],
    target_tokens: str | None,
    dry_run: bool,
    resume: bool,
    quiet: bool,
) -> None:
    """Pack INPUTS (JSONL[.gz|.zst], JSON arrays, Parquet, folders of .txt/.md, globs, or - for
    standard input) into a dataset folder: one subfolder per format, manifest.json (the
    account of every document) and rejects.jsonl (every dropped document with its reason).
    """
    from qudata.config import load_config
    from qudata.pipeline import pack_dataset

    overrides = _overrides(
        input={
            "on_error": on_error,
            "text_key": text_key,
            "id_key": id_key,
            "columns": _columns(columns),
        },
        quality={"tokenizer": tokenizer, "min_quality_score": min_quality},
        dedup={"method": dedup, "threshold": dedup_threshold, "memory": dedup_memory},
        output={
            "seed": seed,
            "shuffle": shuffle,
            "shard_size": shard_size,
            "shard_records": shard_records,
            "compression": compression,
        },
        engine={
            "name": engine or ("ray" if ray_address else None),
            "address": ray_address,
            "workers": workers,
        },
    )
    if mix_specs or target_tokens:
        overrides["mix"] = _mix(mix_specs, target_tokens)
    elif not inputs:
        raise click.UsageError("give INPUTS (files, folders, globs or -), or --mix")
    if split_spec is not None:
        from qudata.export.splits import parse_split

        try:
            overrides.setdefault("output", {})["split"] = parse_split(split_spec)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--split") from None
    if dry_run:
        _print_stats(inputs, config_path, overrides)
        return
    with _clean_end(output_dir):
        cfg = load_config(config_path, overrides=overrides)
        _check_output_parent(output_dir)
        with TerminalProgress(quiet) as progress:
            report = pack_dataset(
                inputs,
                output_dir,
                config=cfg,
                formats=formats or None,
                overwrite=overwrite,
                progress=progress,
                command=_command_line(output_dir),
                resume=resume,
            )
    for caution in report.cautions:
        click.echo(f"Warning: {caution}", err=True)
    if not quiet:
        from qudata.console import print_summary

        print_summary(report)


def _mix(specs: tuple[str, ...], target_tokens: str | None) -> dict[str, Any]:
    """``--mix PATH=WEIGHT`` and ``--target-tokens`` as the ``mix`` section."""
    sources = []
    for spec in specs:
        path, sep, weight = spec.rpartition("=")
        try:
            sources.append({"path": path, "weight": float(weight)})
        except ValueError:
            sep = ""
        if not sep or not path:
            raise click.BadParameter(f"{spec!r}: expected PATH=WEIGHT", param_hint="--mix")
    mix: dict[str, Any] = {"sources": sources} if sources else {}
    if target_tokens is not None:
        mix["target_tokens"] = target_tokens
    return mix


@cli.command()
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
    type=click.Choice(["none", "exact", "near"]),
    default=None,
    help="Duplicate removal before counting (default: exact).",
)
@click.option("--text-key", default=None, help="Input field holding the text (default: text).")
@_COLUMN_OPTION
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
    overrides = _overrides(
        input={"text_key": text_key, "columns": _columns(columns)},
        quality={"tokenizer": tokenizer},
        dedup={"method": dedup},
    )
    _print_stats(inputs, config_path, overrides, as_json=as_json)


def _print_stats(
    inputs: tuple[str, ...],
    config_path: str | None,
    overrides: dict[str, Any],
    *,
    as_json: bool = False,
) -> None:
    from qudata.config import load_config
    from qudata.console import print_stats
    from qudata.stats import collect_stats

    with _clean_end():
        result = collect_stats(inputs, config=load_config(config_path, overrides=overrides))
    if as_json:
        import orjson

        click.echo(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_stats(result)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(list(VALIDATED_FORMATS)),
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
    default="cl100k_base",
    show_default=True,
    help="Token counter for ChatML token statistics and --max-tokens.",
)
@click.option(
    "--separator",
    default="\n---\n",
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

    with _clean_end():
        counter = get_token_counter(tokenizer) if fmt == "chatml" else None
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


def _columns(values: tuple[str, ...]) -> dict[str, str] | None:
    """``--column NAME=KEY`` options as ``input.columns`` (``None``: none given)."""
    out = {}
    for value in values:
        name, sep, key = value.partition("=")
        if not sep or not name.strip() or not key.strip():
            raise click.BadParameter(f"{value!r}: expected NAME=KEY", param_hint="--column")
        out[name.strip()] = key.strip()
    return out or None


def _overrides(**sections: dict[str, Any]) -> dict[str, Any]:
    """Configuration overrides from options; an option not given overrides nothing."""
    out: dict[str, Any] = {}
    for name, values in sections.items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            out[name] = given
    return out


def main() -> None:
    """Entry point of the ``qudata`` console script."""
    signal.signal(signal.SIGTERM, _on_signal)  # like Ctrl-C: clean up, then exit 143
    cli(prog_name="qudata")
