"""The ``qudata`` command: a thin layer that parses options, calls the library, prints the account.

Errors a user can cause are printed as one ``Error: ...`` line with exit code
2 (usage, configuration, output folder) or 1 (bad data under ``on_error:
fail``), never as a traceback.
"""

from __future__ import annotations

import os
import signal

import click

from qudata.cli_args import (
    COLUMN_OPTION,
    ArgvGroup,
    choices,
    command_line,
    config_overrides,
    default,
    mix_section,
    parse_columns,
    parse_split_option,
    spare_warm,
    spare_workers,
)
from qudata.cli_exit import check_output_parent, clean_end, on_signal
from qudata.cli_stats import print_stats_of, stats
from qudata.cli_validate import validate
from qudata.config import (
    DedupConfig,
    EngineConfig,
    InputConfig,
    OutputConfig,
    load_config,
)
from qudata.engines.local import usable_cpus
from qudata.engines.pool import quiet_collector
from qudata.engines.spares import forked_workers
from qudata.pack.registry import FORMATTERS
from qudata.progress import TerminalProgress
from qudata.version import __version__

__all__ = ["cli", "main"]


@click.group(cls=ArgvGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    help="Dataset folder, or object-storage URI (s3://bucket/out), to write (refused if "
    "not empty, unless --overwrite).",
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
    type=choices(InputConfig, "on_error"),
    default=None,
    help="Bad input record: skip it into rejects.jsonl (default) or stop with exit 1.",
)
@click.option(
    "--text-key",
    default=None,
    help=f"Input field holding the text (default: {default(InputConfig, 'text_key')}).",
)
@click.option(
    "--id-key",
    default=None,
    help=f"Input field holding the id (default: {default(InputConfig, 'id_key')}).",
)
@COLUMN_OPTION
@click.option(
    "--tokenizer",
    default=None,
    help="Token counter: cl100k_base (default, exact, offline), o200k_base, "
    "PATH/tokenizer.json, estimate (approximate) or none.",
)
@click.option(
    "--dedup",
    type=choices(DedupConfig, "method"),
    default=None,
    help=f"Duplicate removal (default: {default(DedupConfig, 'method')}; near implies exact).",
)
@click.option(
    "--dedup-threshold",
    type=float,
    default=None,
    help=f"Jaccard similarity for near duplicates (default: {default(DedupConfig, 'threshold')}).",
)
@click.option(
    "--dedup-memory",
    default=None,
    metavar="SIZE",
    help="Memory budget of the global dedup step, e.g. 256MB "
    f"(default: {default(DedupConfig, 'memory')}).",
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
@click.option(
    "--seed",
    type=int,
    default=None,
    help=f"Seed of splits and shuffling (default: {default(OutputConfig, 'seed')}).",
)
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
    type=choices(OutputConfig, "compression"),
    default=None,
    help="Compress output files (.gz / .zst); Parquet compresses internally.",
)
@click.option(
    "--engine",
    type=choices(EngineConfig, "name"),
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
    "completed (checked by their digests) are not computed again; the output is the same.",
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
    # the local engine's workers, forked while this process has one thread, once it has
    # imported the stages and loaded the likely tokenizer (they share them)
    warm, planned_engine, planned_workers = spare_warm(
        config_path, tokenizer, engine, workers, dedup
    )
    count = 0
    if not dry_run:
        planned_engine = "ray" if ray_address else planned_engine
        count = spare_workers(inputs, planned_engine, planned_workers, usable_cpus())
    with forked_workers(count, warm):  # those the run does not take end with the command
        from qudata.pipeline import pack_dataset

        overrides = config_overrides(
            input={
                "on_error": on_error,
                "text_key": text_key,
                "id_key": id_key,
                "columns": parse_columns(columns),
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
            overrides["mix"] = mix_section(mix_specs, target_tokens)
        if split_spec is not None:
            overrides.setdefault("output", {})["split"] = parse_split_option(split_spec)
        if dry_run:
            print_stats_of(inputs, config_path, overrides)
            return
        with clean_end(output_dir):
            cfg = load_config(config_path, overrides=overrides)
            if not inputs and cfg.mix is None:  # mix.sources of --config replace INPUTS
                raise click.UsageError(
                    "give INPUTS (files, folders, globs or -), --mix, or mix.sources in --config"
                )
            check_output_parent(output_dir)
            with TerminalProgress(quiet) as progress:
                report = pack_dataset(
                    inputs,
                    output_dir,
                    config=cfg,
                    formats=formats or None,
                    overwrite=overwrite,
                    progress=progress,
                    command=command_line(output_dir),
                    resume=resume,
                )
        try:
            for caution in report.cautions:
                click.echo(f"Warning: {caution}", err=True)
            if not quiet:
                from qudata.console import print_summary

                print_summary(report)
        except KeyboardInterrupt as exc:  # the dataset is in place
            exc.published = output_dir  # type: ignore[attr-defined]
            with clean_end(output_dir):
                raise


cli.add_command(stats)
cli.add_command(validate)


def main() -> None:
    """Entry point of the ``qudata`` console script."""
    signal.signal(signal.SIGTERM, on_signal)  # like Ctrl-C: clean up, then exit 143
    # qudata makes no BLAS call, and OpenBLAS's threads, started when numpy is imported,
    # spin on the cores the run needs (measured: 0.2 CPU-s of a 2-core run) and would
    # forbid the fork of its workers once numpy is loaded. Set before numpy's import
    # (it is imported when first used), whatever the environment says: nothing else
    # runs in qudata's processes, and its workers inherit it.
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    quiet_collector()  # before pack forks its workers: they inherit it
    try:
        cli(prog_name="qudata")
    finally:  # the command has ended and said how: a late signal changes nothing
        for held in (signal.SIGINT, signal.SIGTERM):
            signal.signal(held, signal.SIG_IGN)
