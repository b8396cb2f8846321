"""The driver of the partitioned plan: map 1, the global steps, map 2, the commit.

The stages are the functions of :mod:`qudata.stages`; an executor (the local process
pool, Ray) only runs their calls and hands back the results in order. What the driver
itself does is small and never per record: it adds up the partitions' scans and
accounts, resolves duplicates on compact keys, plans the mix, and merges statistics.

    map 1   scan_partition     each partition: keys, schema, line count
    global  resolve            the verdicts of deduplication (its steps are executor
                               calls too); the mix plan
    map 2   write_partition    each partition: rejects and format parts, its account
    commit  commit_format      each format: shards from the parts, in partition order
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from qudata.account import Observations, RunReport
from qudata.dedup.summary import DedupSummary
from qudata.errors import InputError
from qudata.executor import Executor, LocalFiles, Progress, StagingFiles
from qudata.export.inputs import input_entries
from qudata.pack.schema import MetadataSchema
from qudata.pause import pause_at
from qudata.plan.job import Job
from qudata.plan.mix import MixPlanner
from qudata.plan.partitions import line_starts
from qudata.quality.score import COMPONENTS
from qudata.stages.account import Account, add_account
from qudata.stages.commit import Committed, commit_format, commit_rejects
from qudata.stages.content import check_pieces, check_remote
from qudata.stages.mix import merge_surveys, survey_partition
from qudata.stages.scan import Scan, scan_partition
from qudata.stages.tally import Tally, tally_partition
from qudata.stages.write import write_partition

__all__ = ["Outcome", "derived_offsets", "execute", "tally"]


@dataclass
class Outcome:
    """The run's account and what the report charts need."""

    report: RunReport
    seen: Observations = field(default_factory=Observations)
    drops: Any = None
    token_buckets: dict[tuple[str, str], list[tuple[int, int, int]]] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)  # the executor and its workers


def execute(job: Job, report: RunReport, executor: Executor, progress: Progress) -> Outcome:
    """Run ``job`` with ``executor``; fill and return its account."""
    cfg = job.cfg
    count = len(job.partitions)
    calls = [(job, n) for n in range(count)]
    step = _steps(job, progress)
    scans, notes, summary = _scan_and_dedup(job, executor, progress)
    dedup_run: dict[str, Any] | None = None
    if summary is not None:
        report.dedup, dedup_run = summary.as_manifest(), summary.as_run()
    if cfg.mix is not None:
        progress.phase("mix", count, "partitions")
        planner = MixPlanner([s.weight for s in cfg.mix.sources], seed=cfg.mix.seed,
                             target_tokens=cfg.mix.target_tokens)  # fmt: skip
        surveys = executor.map(survey_partition, calls, lambda n, done: progress.advance(1))
        job.mix = merge_surveys(planner, surveys).plan()
    total = Account(formats=len(cfg.pack.formats))
    resumed = sum(s.resumed for s in scans)
    taken = {"partitions": count, "taken": int(job.resume), "scan": resumed, "write": 0}

    recorded: list[dict[str, str]] = []  # per partition, the digest of each part it wrote

    def add(account: Account) -> None:  # in partition order, as each is done
        nonlocal resumed
        resumed += account.resumed
        taken["write"] += account.resumed
        if account.recomputed is not None:
            notes.append(f"partition {len(recorded)} recomputed: {account.recomputed}")
        recorded.append(account.parts)
        add_account(report, total, account)

    executor.map(write_partition, calls, step("write"), consume=add)
    report.resumed = taken
    report.notes.extend(dict.fromkeys(notes))
    failed = {entry["path"] for entry in report.inputs if entry.get("failed")}
    check_remote(job.partitions, failed)  # each remote input: still the object listed
    report.inputs = input_entries(report.inputs, job.partitions, scans)
    names = list(cfg.pack.formats)
    files = getattr(executor, "files", None) or LocalFiles()
    parts = [_parts_bytes(job, name, files) for name in [*names, "rejects"]]
    progress.phase("commit", sum(parts))
    commits: list[Committed | None] = executor.map(
        _commit,
        [
            (job, name, total.feature_state.get(name, {}), [p.get(name) for p in recorded])
            for name in names
        ]
        + [(job, None, {}, [p.get("rejects") for p in recorded])],
        lambda number, done: progress.advance(parts[number]),
    )
    outcome = Outcome(report, total.seen, total.drops)
    outcome.run["resumed"] = resumed
    if dedup_run is not None:
        outcome.run["dedup"] = dedup_run
    for name, committed in zip(names, commits, strict=False):
        assert committed is not None
        stats = committed.stats
        merged = total.by_format.get(name)
        if merged is not None:
            stats.documents, stats.records = merged.documents, merged.records
            stats.dropped, stats.warnings = merged.dropped, merged.warnings
            stats.dropped_tokens, stats.sources = merged.dropped_tokens, merged.sources
            stats.events = merged.events
        report.formats[name] = stats
        for split, buckets in committed.histograms.items():
            outcome.token_buckets[(name, split)] = buckets
    _checks_report(report, total)
    if job.mix is not None and cfg.mix is not None:
        for source, (docs, tokens, repeated, down) in sorted(total.mix.items()):
            plan = job.mix.sources[source]
            plan.written_documents, plan.written_tokens = docs, tokens
            plan.repeated, plan.downsampled = repeated, down
        paths = [source.path for source in cfg.mix.sources]
        report.mix = job.mix.as_manifest(paths, cfg.mix.target_tokens)
    return outcome


def tally(job: Job, executor: Executor, progress: Progress) -> Tally:
    """``qudata stats``: map 1 and the global dedup step as :func:`execute` runs them,
    then a tally of each partition instead of map 2 (its figures added up)."""
    _scan_and_dedup(job, executor, progress)
    total = Tally()
    calls = [(job, n) for n in range(len(job.partitions))]
    executor.map(tally_partition, calls, _steps(job, progress)("tally"), consume=total.add)
    return total


def _steps(job: Job, progress: Progress) -> Callable[[str], Callable[[int, Any], None]]:
    """A map over the partitions as a phase of ``progress`` in input bytes."""
    sizes = [p.size or 1 for p in job.partitions]

    def step(label: str) -> Callable[[int, Any], None]:
        progress.phase(label, sum(sizes))
        return lambda number, done: progress.advance(sizes[number], getattr(done, "read", 0))

    return step


def _scan_and_dedup(
    job: Job, executor: Executor, progress: Progress
) -> tuple[list[Scan], list[str], DedupSummary | None]:
    """Map 1, what the driver learns from the scans, and the global dedup step (on
    ``executor``): the scans, notes of recomputed partitions, and dedup's summary."""
    cfg = job.cfg
    count = len(job.partitions)
    calls = [(job, n) for n in range(count)]
    scans: list[Scan] = executor.map(scan_partition, calls, _steps(job, progress)("scan"))
    notes: list[str] = []
    for number, scan in enumerate(scans):
        if scan.recomputed is not None:
            notes.append(f"partition {number} recomputed: {scan.recomputed}")
    _after_scans(job, scans)
    if cfg.dedup.method == "none":
        return scans, notes, None
    pause_at("dedup")
    # numpy: imported when used, after map 1 (the workers have their first calls first)
    from qudata.dedup.step import resolve

    files = getattr(executor, "files", None)  # Ray: the staging may be on object storage
    summary = resolve(
        job.dedup_dir, count, cfg.dedup, executor=executor, progress=progress, files=files
    )
    return scans, notes, summary


def _parts_bytes(job: Job, kind: str, files: StagingFiles) -> int:
    """The bytes of ``kind``'s part files (a format, ``rejects``): the commit's work."""
    return sum(files.size(job.part_file(kind, n)) or 0 for n in range(len(job.partitions)))


def _commit(
    job: Job, name: str | None, feature_state: dict[str, Any], parts: list[str | None]
) -> Committed | None:
    """One commit call: a format's shards, or (``name`` None) the rejects; ``parts``:
    the digest of each partition's part, as it recorded them."""
    if name is None:
        commit_rejects(job, parts)
        return None
    return commit_format(job, name, feature_state, parts)


def _after_scans(job: Job, scans: list[Scan]) -> None:
    """Line numbers, the first error in input order, the schema."""
    cfg = job.cfg
    check_pieces(job.partitions, scans)
    job.content = [s.content or [] for s in scans]
    job.content_sha256 = hashlib.sha256(orjson.dumps(job.content)).hexdigest()
    job.verdicts = [s.verdicts for s in scans]
    job.first_lines = line_starts(job.partitions, [s.lines for s in scans])
    stopped: set[str] = set()
    for partition, scan, first in zip(job.partitions, scans, job.first_lines, strict=True):
        if partition.source.path in stopped:
            job.skip.add(partition.index)
            continue
        if scan.error is not None:
            error = scan.error
            if error.line is not None and partition.piece > 0:  # its line in the file
                line = error.line + first - 1
                InputError.__init__(
                    error, error.detail, source=error.source, line=line, reason=error.reason
                )
            if cfg.input.on_error == "fail":
                raise error
            stopped.add(partition.source.path)
    job.derived = derived_offsets(job, scans)
    if any(s.schema is not None for s in scans):
        schema = MetadataSchema()
        for scan in scans:
            if scan.schema is not None:
                schema.merge(MetadataSchema.from_json(scan.schema))
        for key in ("chars", "words", "tokens"):  # keys the run adds after this pass
            if key in cfg.output.add_metadata:
                schema.add(key, [0])
        if cfg.quality.missing_score == "score" and cfg.quality.score_components:
            schema.add("quality_components", [dict.fromkeys(COMPONENTS, 0.5)])
        job.schema = schema.to_json()


def derived_offsets(job: Job, scans: list[Scan]) -> dict[int, dict[str, int]]:
    """Per partition, how many of its derived ids' bases the partitions before it gave
    out (so ``-2``, ``-3`` follow in input order across partitions)."""
    given: dict[str, int] = {}  # derived ids given out by the partitions so far
    offsets: dict[int, dict[str, int]] = {}
    for partition, scan in zip(job.partitions, scans, strict=True):
        if partition.index in job.skip or not scan.derived:
            continue
        before = {b: given[b] for b in scan.derived if b in given}
        if before:
            offsets[partition.index] = before
        for base, count in scan.derived.items():
            given[base] = given.get(base, 0) + count
    return offsets


def _checks_report(report: RunReport, total: Account) -> None:
    """Warnings of the checks, and the decontamination's drops per benchmark file."""
    for name, counts in total.checks.items():
        check, counter = name.split(".", 1)
        if counter == "warnings":
            report.warnings.update(counts)
        elif check == "decontamination" and counter == "dropped":
            report.contaminated = dict(counts)
    if report.contaminated is not None:
        from qudata.quality.decontaminate import benchmark_report

        matched = total.checks.get("decontamination.matched", Counter())
        report.decontamination = benchmark_report(Counter(report.contaminated), matched)
