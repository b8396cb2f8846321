"""The whole job: plan -> executor -> commit -> publish (the façade of ``qudata pack``).

The inputs become partitions (:mod:`qudata.plan.partitions`); the stages
(:mod:`qudata.stages`) run on an executor, the local process pool or Ray
(:mod:`qudata.engines`), driven by :func:`qudata.driver.execute`. Output goes to
a hidden staging folder beside ``output_dir``; ``manifest.json`` is written last and
the folder is renamed into place only when the run completed, so a folder with a
manifest is a complete dataset. A URI ``output_dir`` (``s3://bucket/out``) is staged
in a local folder and uploaded, ``manifest.json`` last
(:mod:`qudata.io.remote_output`).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

from qudata.account import RunReport
from qudata.config import Config, load_config, parse_size
from qudata.driver import Outcome, execute
from qudata.engines import job_executor, ray_engine
from qudata.errors import ConfigError, InputError, OutputError, StorageError, WorkerError
from qudata.executor import Executor, Progress, Quiet
from qudata.export.publish import publish_dataset
from qudata.io.lines import read_lines
from qudata.io.output_dir import (
    OutputLock,
    check_not_an_input,
    check_output_dir,
    make_staging,
    recover,
)
from qudata.io.remote_output import RemoteOutput
from qudata.io.sources import InputWalk, Source, walk_arguments, walk_inputs
from qudata.io.uri import configure, is_uri
from qudata.normalize.account import input_cautions
from qudata.plan.job import Job
from qudata.plan.partitions import plan_partitions
from qudata.stages.context import forget
from qudata.stages.resume import fingerprint, start

__all__ = ["pack_dataset"]


def pack_dataset(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    config: Config | dict[str, Any] | str | os.PathLike[str] | None = None,
    formats: Iterable[str] | None = None,
    overwrite: bool | None = None,
    progress: Progress | None = None,
    command: str | None = None,
    resume: bool = False,
) -> RunReport:
    """Pack ``inputs`` (files, folders, globs, ``-``) into a dataset folder; return the account.

    ``command`` is shown in the dataset card as the command that made the folder;
    ``progress`` receives each phase with its total and unit, then the work done (see
    :class:`qudata.executor.Progress`). ``resume``: take up
    the staging folder of a killed run into ``output_dir`` (see
    :mod:`qudata.stages.resume`); the output is the same as an uninterrupted run's.

    Example::

        report = pack_dataset(["docs.jsonl"], "out", formats=["chatml", "jsonl"])
        assert report.balanced()
    """
    overrides: dict[str, Any] = {}
    if formats is not None:
        overrides["pack"] = {"formats": list(formats)}
    if overwrite is not None:
        overrides["output"] = {"overwrite": overwrite}
    cfg = load_config(config, overrides=overrides)
    configure(cfg.storage.options)
    target = _target(os.fspath(output_dir), cfg)  # before Path() makes s3://b a folder "s3:/b"
    # a URI output: a local folder that is never created stands for it (lock, staging)
    out = Path(output_dir) if target is None else target.shadow
    if cfg.mix is not None:
        if inputs not in ((), [], None):
            raise ConfigError("give the inputs either as INPUT arguments or as mix.sources")
        inputs = [item.path for item in cfg.mix.sources]
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    arguments = [os.fspath(item) for item in inputs]
    # never write over, into or around an input (files found in folders are checked next)
    check_not_an_input(out, [a for a in arguments if not glob.has_magic(a)], [])
    if target is not None:
        target.check_inputs(arguments)
    _check_staging(cfg.storage.staging, arguments)
    expand = _walk
    if cfg.engine.name == "ray":
        expand = ray_engine().expand_sources
    found, argument_of = walk_arguments(arguments, out, expand)
    if cfg.mix is not None:
        _check_mix_sources(found.sources)
    report = _new_report(cfg)
    report.skipped.update(found.skipped)
    published: list[str] = []  # the output folder, once the dataset is in place
    where = str(out) if target is None else target.uri
    try:
        with OutputLock(out):
            # before the checks: a restored dataset is not replaced unasked
            previous = recover(out, keep=resume)
            if target is None:
                check_output_dir(out, overwrite=cfg.output.overwrite)
            else:
                target.check(overwrite=cfg.output.overwrite)
            staging = make_staging(out, previous).resolve()  # absolute: workers may run elsewhere
            resumable = False
            handoff: Any = None  # a Ray run's staging on the store, until the publication
            try:
                sources = [_absolute(s) for s in _spool_stdin(found.sources, staging, cfg)]
                job = Job(cfg, staging, plan_partitions(sources, _partition_size(cfg)))
                job.resume = start(job, fingerprint(job, report.config))
                resumable = True
                job.shuffle_buckets = _shuffle_buckets(job)
                if cfg.mix is not None:
                    job.mix_source.update(argument_of)
                outcome, handoff = _run(job, report, progress or Quiet(), target, where)
                if not resume:
                    report.resumed = None  # the summary says what --resume took, when asked
                _check_written(outcome)
                shutil.rmtree(job.parts, ignore_errors=True)
                publish_dataset(
                    staging,
                    out,
                    report,
                    seen=outcome.seen,
                    token_buckets=outcome.token_buckets,
                    quality_threshold=cfg.quality.min_quality_score,
                    command=command,
                    run=outcome.run,
                    mark=lambda: published.append(where),
                    remote=target,
                    overwrite=cfg.output.overwrite,
                )
                if target is not None:  # uploaded: the local staging goes
                    shutil.rmtree(staging, ignore_errors=True)
            except (StorageError, WorkerError) as exc:
                if not resumable:  # failed before any stage ran: nothing to take up
                    shutil.rmtree(staging, ignore_errors=True)
                    raise
                # the storage or a worker failed: the partitions done stay for --resume
                exc.args = (f"{exc}; the partitions done are kept: run again with --resume",)
                raise
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            finally:
                if handoff is not None:  # published or not, the staged copies go
                    handoff.release()
                forget()
                spool = _spool_path(staging)
                spool.unlink(missing_ok=True)
    except KeyboardInterrupt as exc:  # after the rename: say the dataset is in place
        if published:
            exc.published = published[0]  # type: ignore[attr-defined]
        raise
    finally:
        if target is not None:
            with suppress(OSError):
                out.parent.rmdir()  # the lock's folder, when empty (no run, nothing kept)
    report.output_dir = where
    return report


def _target(output: str, cfg: Config) -> RemoteOutput | None:
    """The object-storage output ``output`` names, or None for a local folder."""
    return RemoteOutput(output, cfg.storage.staging) if is_uri(output) else None


def _check_staging(staging: str | None, arguments: list[str]) -> None:
    """A staging prefix (``storage.staging: s3://...``) never lies in an input folder: a
    killed run's staged files would be read as inputs."""
    if staging is None or not is_uri(staging):
        return
    for given in arguments:
        folder = given.rstrip("/")
        if is_uri(folder) and (staging.rstrip("/") == folder or staging.startswith(folder + "/")):
            raise ConfigError(
                f"storage.staging {staging} lies in the input {given}: give a staging prefix "
                "outside the inputs"
            )


def _check_mix_sources(sources: list[Source]) -> None:
    """Every file in one mix source only (one read twice would count twice)."""
    seen: dict[str, str] = {}
    for source in sources:
        key = source.path if "://" in source.path else os.path.realpath(source.path)
        if key in seen:
            same = "is listed twice" if seen[key] == source.name else f"is {seen[key]} again"
            raise ConfigError(
                f"mix.sources: {source.name} {same}; give each file in one source only "
                "(it would be read, and counted, twice)"
            )
        seen[key] = source.name


def _walk(arguments: list[str], *, exclude: Path) -> InputWalk:
    """The local engine's walk; a URI is listed through fsspec (as on Ray)."""
    if any(is_uri(a) for a in arguments):
        from qudata.engines.ray_inputs import expand_sources  # imports no Ray

        return expand_sources(arguments, exclude=exclude)
    return walk_inputs(arguments, exclude=exclude)


def _new_report(cfg: Config) -> RunReport:
    from qudata.version import __version__

    # ``output.overwrite`` says how to write, ``engine`` where: both are left out so that
    # a rerun with --overwrite, another engine or other workers writes the same bytes
    config = cfg.model_dump(
        mode="json", exclude={"output": {"overwrite"}, "engine": True, "storage": True}
    )  # storage: credentials never go into the manifest
    if not any(config["output"]["card"].values()):  # manifests without one stay as they were
        del config["output"]["card"]
    return RunReport(qudata_version=__version__, config=config)


def _run(
    job: Job, report: RunReport, progress: Progress, target: RemoteOutput | None, where: str
) -> tuple[Outcome, Any]:
    """The run's account, and a Ray run's staging on the store when the output is on
    the same file system: its committed files are copied there, not uploaded (the
    caller releases it once the dataset is published or not)."""
    executor = _executor(job, target, where)
    mirror = getattr(executor, "files", None)  # Ray: the staging on object storage
    handoff = None
    try:
        outcome = execute(job, report, executor, progress)
        if mirror is not None and target is not None and _same_store(mirror.fs, target.fs):
            target.copies = mirror.committed()
            mirror.keep, handoff = True, mirror
    except (StorageError, WorkerError):
        if mirror is not None:
            mirror.keep = True  # what the tasks staged there, for --resume
        raise
    finally:
        executor.close()
    if mirror is not None:
        outcome.run["staging"] = {"uri": mirror.prefix, **mirror.moved}  # bytes moved
    outcome.run = {"engine": executor.name, "workers": executor.workers, **outcome.run}
    return outcome, handoff


def _same_store(a: Any, b: Any) -> bool:
    """Two fsspec file systems that reach the same store (so one copies the other's files
    there): the same class with the same options."""
    return type(a) is type(b) and a.storage_options == b.storage_options


def _executor(job: Job, target: RemoteOutput | None, where: str) -> Executor:
    if target is None:
        executor: Executor = job_executor(job, os.path.abspath(where))
        return executor

    def unshared(problem: str) -> OutputError:
        return OutputError(
            f"{target.uri}: the staging folder {job.staging.parent} (storage.staging) is not "
            f"shared by the nodes of the Ray cluster: {problem}; set storage.staging to a "
            "folder that every node mounts at the same path (NFS, a shared volume), or to "
            "an object-storage prefix (s3://bucket/tmp)"
        )

    executor = job_executor(job, where, unshared=unshared)
    return executor


def _partition_size(cfg: Config) -> int | None:
    size = cfg.engine.partition_size
    return None if size is None else parse_size(size)


def _check_written(outcome: Outcome) -> None:
    """No empty success: a run that wrote no document fails (exit 1) and publishes
    nothing; otherwise the summary notes files that were mostly rejected."""
    report = outcome.report
    report.notes = [*report.notes, *outcome.drops.notes(report.inputs)]
    if not any(stats.documents for stats in report.formats.values()):
        raise InputError(outcome.drops.nothing_written(report.read), reason="nothing_written")
    report.cautions.extend(input_cautions(report.config.get("input", {}), report.input_keys))
    for name, stats in report.formats.items():
        if not stats.documents:
            reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(stats.dropped.items())) or "-"
            report.cautions.append(
                f"format {name!r} wrote nothing while other formats wrote documents "
                f"(dropped: {reasons})"
            )
    quality = report.config.get("quality", {})
    if quality.get("decontamination"):
        from qudata.quality.decontaminate import unindexed_cautions

        report.cautions += unindexed_cautions(quality["decontamination"])
    threshold, missing = quality.get("min_quality_score"), quality.get("missing_score")
    unscored = outcome.seen.unscored
    if threshold is not None and missing == "keep" and unscored:
        total = unscored + sum(outcome.seen.quality_bins)
        report.cautions.append(
            f"min_quality_score {threshold}: {unscored:,} of {total:,} "
            "documents had no quality_score and were kept unfiltered (quality.missing_score: "
            "keep; set it to drop or score to filter them)"
        )


def _absolute(source: Source) -> Source:
    """``source`` read by its absolute path (its name, shown everywhere, stays)."""
    if source.path == "-" or "://" in source.path:
        return source
    return Source(os.path.abspath(source.path), source.kind, source.name, source.problem,
                  source.detail)  # fmt: skip


def _spool_path(staging: Path) -> Path:
    return staging.with_name(staging.name.replace("-partial-", "-stdin-"))


def _spool_stdin(sources: list[Source], staging: Path, cfg: Config) -> list[Source]:
    """Standard input copied to a file beside the staging folder, so both maps read the
    same bytes (the copy goes when the run ends)."""
    if not any(s.path == "-" for s in sources):
        return sources
    spool = _spool_path(staging)
    with open(spool, "wb") as out:
        _spool(sys.stdin.buffer, out, parse_size(cfg.input.max_line_bytes))
    return [Source(str(spool), "jsonl", s.name) if s.path == "-" else s for s in sources]


def _spool(stream: Any, out: Any, max_bytes: int) -> None:
    """Copy ``stream`` (standard input) to ``out`` in bounded disk and memory: a line over
    ``max_bytes`` becomes one of ``max_bytes + 1`` bytes with the same start, which the
    reader rejects as ``line_too_long`` at the same line; a long binary line ends the copy,
    as it ends the reading (so ``/dev/zero`` cannot fill the disk)."""
    for line in read_lines(stream, max_bytes):
        if isinstance(line, bytes):
            out.write(line)
            continue
        filler = b"\0" if line.binary else b" "
        out.write(line.prefix)
        for left in range(max_bytes + 1 - len(line.prefix), 0, -(1 << 20)):
            out.write(filler * min(left, 1 << 20))
        if line.binary:
            return
        out.write(b"\n")


def _shuffle_buckets(job: Job) -> int:
    """About 32 MB of input per shuffle bucket, between 4 and 1024 buckets; every
    format and split has its own shuffler: at most 512 bucket files open in all."""
    cfg = job.cfg
    size = sum(p.size for p in job.partitions)
    buckets = max(16, min(1024, size // (32 << 20) + 1))
    shufflers = len(cfg.pack.formats) * len(cfg.output.split)
    return max(4, min(buckets, 512 // shufflers))
