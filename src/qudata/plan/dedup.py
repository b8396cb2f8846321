"""The global dedup step of the partitioned plan: keys out of each partition, verdicts back.

Map 1 writes, per partition, the documents that passed every check with a
:class:`KeyWriter` (exact keys, MinHash signatures, sorted runs; see
:mod:`qudata.plan.dedup_keys`); :func:`resolve` decides, over all partitions in input
order, which document of each cluster is kept (the first); map 2 reads a partition's
verdicts with :func:`read_verdicts`. Executors call these three functions only.

Everything lives in ``directory`` (inside the run's staging folder), and memory is
bounded by ``dedup.memory``, not by the corpus: runs are written when a partition's
buffer reaches its share, and ``resolve`` works one key range at a time
(:mod:`qudata.plan.runs`). Its steps, each a pure function of files that
``workers`` processes may run in parallel:

1. exact, per key range (:func:`qudata.plan.dedup_exact.exact_range`);
2. near, per band key range (:func:`qudata.plan.dedup_near.bucket_range`), then the
   rule over the confirmed pairs in input order (:func:`~qudata.plan.dedup_near.first_kept`:
   a document names the earliest *kept* document it is similar to);
3. per partition, the verdicts (:func:`qudata.plan.dedup_verdicts.assemble`), then
   the cluster sizes.

The state held across a whole run is two bits per document (exact and near
duplicates), 25 MB per 100 million documents.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qudata.config import DedupConfig
from qudata.plan.dedup_exact import exact_range
from qudata.plan.dedup_files import BAND_HASH_BITS, DUP, DedupParams, partition_file
from qudata.plan.dedup_keys import KeyWriter
from qudata.plan.dedup_near import Documents, bucket_range, first_kept
from qudata.plan.dedup_verdicts import PartitionVerdicts, assemble, cluster_sizes
from qudata.plan.runs import key_ranges
from qudata.quality.dedup import DedupVerdict

__all__ = ["DedupSummary", "KeyWriter", "key_files", "read_verdicts", "resolve"]


@dataclass
class DedupSummary:
    """What the step did, for the manifest and the report.

    ``cluster_sizes``: cluster size -> number of clusters (size 1: a document with no
    duplicate). The parameters say how near duplicates were found; ``spill_bytes``,
    ``ranges`` and ``workers`` depend on the executor (the manifest's ``run`` section).
    """

    documents: int = 0
    duplicates: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    cluster_sizes: dict[int, int] = field(default_factory=dict)
    spill_bytes: int = 0
    method: str = "exact"
    threshold: float | None = None
    permutations: int | None = None
    bands: int | None = None
    rows: int | None = None
    shingle_size: int | None = None
    seed: int | None = None
    memory: int = 0
    ranges: int = 0
    candidate_pairs: int = 0
    confirmed_pairs: int = 0
    workers: int = 1


class _Executor:
    """Runs independent calls of one function, here or in ``workers`` processes."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: Any = None

    def map(self, function: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        if self.workers < 2 or len(calls) < 2:
            return [function(*args) for args in calls]
        if self._pool is None:
            from qudata.engines.pool import ProcessPool

            self._pool = ProcessPool(self.workers)
        results: list[Any] = []
        for start in range(0, len(calls), self.workers):
            results += self._pool.map(function, calls[start : start + self.workers])
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


class _Spill:
    """Files of the step: their sizes are counted once, when they are removed or kept."""

    def __init__(self) -> None:
        self.bytes = 0

    def remove(self, paths: Sequence[Path]) -> None:
        for path in paths:
            if path.exists():
                self.bytes += path.stat().st_size
                path.unlink()

    def keep(self, paths: Sequence[Path]) -> None:
        self.bytes += sum(p.stat().st_size for p in paths if p.exists())


def _meta(directory: Path, partition: int) -> dict[str, Any]:
    path = partition_file(directory, partition, ".meta.json")
    if not path.exists():
        raise RuntimeError(f"dedup: partition {partition}'s KeyWriter was not closed")
    meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return meta


def _runs(directory: Path, metas: Sequence[dict[str, Any]], kind: str) -> list[Path]:
    return [
        partition_file(directory, p, f"-{kind[0]}{r:05d}.run")
        for p, meta in enumerate(metas)
        for r in range(meta["runs"][kind])
    ]


def _size(paths: Sequence[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def resolve(
    directory: Path,
    partitions: int,
    dedup: DedupConfig,
    *,
    memory: int | str | None = None,
    workers: int = 1,
) -> DedupSummary:
    """Every partition's verdicts: the first copy of a cluster in input order is kept.

    ``memory`` overrides ``dedup.memory``; ``workers`` processes run the independent
    steps (key ranges, partitions) in parallel.
    """
    params = DedupParams.of(dedup, memory)
    metas = [_meta(directory, p) for p in range(partitions)]
    counts = [int(m["documents"]) for m in metas]
    summary = DedupSummary(documents=sum(counts), method=params.method, memory=params.memory)
    summary.workers = workers
    if params.near:
        summary.threshold, summary.permutations = params.threshold, params.num_perm
        summary.bands, summary.rows = params.bands, params.rows
        summary.shingle_size, summary.seed = params.ngram, params.seed
    spill, executor = _Spill(), _Executor(workers)
    try:
        exact_out = _exact(directory, metas, params, summary, spill, executor)
        near_run = near_bits = None
        if params.near:
            near_run, near_bits = _near(
                directory, metas, counts, exact_out, params, summary, spill, executor
            )
        calls = [(directory, p, exact_out, near_run, counts, near_bits) for p in range(partitions)]
        for exact, near in executor.map(assemble, calls):
            summary.exact_duplicates += exact
            summary.near_duplicates += near
        summary.duplicates = summary.exact_duplicates + summary.near_duplicates
        members = [partition_file(directory, p, ".members.run") for p in range(partitions)]
        sizes: Counter[int] = Counter()
        for found in executor.map(cluster_sizes, [(members, p) for p in range(partitions)]):
            sizes.update(found)
        sizes[1] = summary.documents - summary.duplicates - sum(sizes.values())
        summary.cluster_sizes = {size: sizes[size] for size in sorted(sizes) if sizes[size]}
    finally:
        executor.close()
    spill.remove([*exact_out, *members, *(p for p in (near_run, near_bits) if p is not None)])
    for p in range(partitions):
        suffixes = (".ids", ".off", ".sig", ".meta.json")
        spill.remove([partition_file(directory, p, s) for s in suffixes])
        spill.keep([partition_file(directory, p, s) for s in (".pos", ".keys", ".verdicts.npz")])
    summary.spill_bytes = spill.bytes
    return summary


def _exact(
    directory: Path,
    metas: Sequence[dict[str, Any]],
    params: DedupParams,
    summary: DedupSummary,
    spill: _Spill,
    executor: _Executor,
) -> list[Path]:
    runs = _runs(directory, metas, "exact")
    if params.method == "none":  # every document kept, with its key
        spill.remove(runs)
        return []
    ranges = key_ranges(_size(runs), params.range_bytes)
    summary.ranges += len(ranges)
    outputs = [directory / f"exact-{i:05d}.run" for i in range(len(ranges))]
    calls = [(runs, lo, hi, out) for (lo, hi), out in zip(ranges, outputs, strict=True)]
    executor.map(exact_range, calls)
    spill.remove(runs)
    return outputs


def _near(
    directory: Path,
    metas: Sequence[dict[str, Any]],
    counts: Sequence[int],
    exact_out: Sequence[Path],
    params: DedupParams,
    summary: DedupSummary,
    spill: _Spill,
    executor: _Executor,
) -> tuple[Path, Path]:
    docs = Documents(counts)
    exact_bits = directory / "exact.bits"
    bits = docs.bits()
    for path in exact_out:
        Documents.set(bits, docs.number(np.fromfile(path, dtype=DUP)["key"]))
    bits.tofile(exact_bits)
    del bits
    runs = _runs(directory, metas, "band")
    space = params.bands << BAND_HASH_BITS
    ranges = key_ranges(_size(runs), params.range_bytes, space=space)
    summary.ranges += len(ranges)
    outputs = [directory / f"edges-{i:05d}.run" for i in range(len(ranges))]
    calls = [
        (directory, runs, lo, space if hi is None else hi, counts, exact_bits, params, out)
        for (lo, hi), out in zip(ranges, outputs, strict=True)
    ]
    for candidates, confirmed in executor.map(bucket_range, calls):
        summary.candidate_pairs += candidates
        summary.confirmed_pairs += confirmed
    spill.remove([*runs, exact_bits])
    near_run, near_bits = directory / "near.run", directory / "near.bits"
    first_kept(outputs, counts, near_run, near_bits)
    spill.remove(outputs)
    return near_run, near_bits


def key_files(directory: Path, partition: int) -> list[Path]:
    """The files a partition's :class:`KeyWriter` left (recorded for ``--resume``)."""
    return sorted(directory.glob(f"{partition:06d}*"))


def read_verdicts(directory: Path, partition: int) -> Mapping[int, DedupVerdict]:
    """Position in the partition -> verdict, for every document given to its KeyWriter
    (a lazy mapping over the partition's files)."""
    return PartitionVerdicts(directory, partition)
