"""One run of the global dedup step: the files listed, the calls handed out, counts added.

:class:`Resolution` is :func:`qudata.dedup.step.resolve`'s body (see that module for
the steps). It reads only each partition's small ``meta.json`` and the sizes of the
files; every step over documents is a call of a top-level function, given to the
executor. It also counts the spill volume: every file of the step, once, as it is
removed or kept, and reports its progress in tasks (each call over a key range, a
partition, or all documents), whose total it knows before the first call.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qudata.dedup.exact import exact_bits, exact_range
from qudata.dedup.files import BAND_HASH_BITS, DedupParams, partition_file
from qudata.dedup.near import bucket_range, first_kept
from qudata.dedup.runs import key_ranges
from qudata.dedup.summary import DedupSummary
from qudata.dedup.verdicts import assemble, cluster_sizes
from qudata.errors import OutputError
from qudata.executor import Executor, LocalFiles, Progress, StagingFiles

__all__ = ["Resolution"]


class _Spill:
    """Files of the step: their sizes are counted once, when they are removed or kept."""

    def __init__(self, files: StagingFiles) -> None:
        self.bytes = 0
        self.files = files

    def remove(self, paths: Sequence[Path]) -> None:
        for path in paths:
            size = self.files.size(path)
            if size is not None:
                self.bytes += size
                self.files.remove(path)

    def keep(self, paths: Sequence[Path]) -> None:
        self.bytes += sum(self.files.size(p) or 0 for p in paths)


def _meta(files: StagingFiles, directory: Path, partition: int) -> dict[str, Any]:
    path = partition_file(directory, partition, ".meta.json")
    if files.size(path) is None:
        raise OutputError(
            f"dedup: {path} is missing: the staging folder changed while the run read it; "
            "run the command again (without --resume)"
        )
    meta: dict[str, Any] = json.loads(files.read_bytes(path).decode("utf-8"))
    return meta


def _runs(directory: Path, metas: Sequence[dict[str, Any]], kind: str) -> list[Path]:
    return [
        partition_file(directory, p, f"-{kind[0]}{r:05d}.run")
        for p, meta in enumerate(metas)
        for r in range(meta["runs"][kind])
    ]


def _size(files: StagingFiles, paths: Sequence[Path]) -> int:
    return sum(files.size(p) or 0 for p in paths)


class Resolution:
    """One call of :func:`resolve`: the files, the calls handed out, the counts added up."""

    def __init__(
        self,
        directory: Path,
        partitions: int,
        params: DedupParams,
        executor: Executor,
        progress: Progress | None = None,
        files: StagingFiles | None = None,
    ) -> None:
        files = files or LocalFiles()
        self.directory, self.partitions = directory, partitions
        self.params, self.executor, self.spill = params, executor, _Spill(files)
        self.progress = progress
        self.metas = [_meta(files, directory, p) for p in range(partitions)]
        self.exact_runs = _runs(directory, self.metas, "exact")
        self.exact_ranges = key_ranges(_size(files, self.exact_runs), params.range_bytes)
        self.band_runs = _runs(directory, self.metas, "band") if params.near else []
        self.band_space = params.bands << BAND_HASH_BITS
        self.band_ranges = (
            key_ranges(_size(files, self.band_runs), params.range_bytes, space=self.band_space)
            if params.near
            else []
        )
        self.counts = [int(m["documents"]) for m in self.metas]
        self.summary = DedupSummary(
            documents=sum(self.counts), method=params.method, memory=params.memory
        )
        self.summary.workers = executor.workers
        if params.near:
            self.summary.threshold, self.summary.permutations = params.threshold, params.num_perm
            self.summary.bands, self.summary.rows = params.bands, params.rows
            self.summary.shingle_size, self.summary.seed = params.ngram, params.seed

    def tasks(self) -> int:
        """The calls :meth:`run` hands out: the progress bar's total."""
        exact = len(self.exact_ranges) if self.params.method != "none" else 0
        near = len(self.band_ranges) + 2 if self.params.near else 0
        return exact + near + 2 * self.partitions

    def _tick(self, number: int, result: Any) -> None:
        if self.progress is not None:
            self.progress.advance(1)

    def run(self) -> DedupSummary:
        directory, partitions, summary = self.directory, self.partitions, self.summary
        if self.progress is not None:
            self.progress.phase("dedup", self.tasks(), "tasks")
        exact_out = self._exact()
        near_run = near_bits = None
        if self.params.near:
            near_run, near_bits = self._near(exact_out)
        calls = [
            (directory, p, exact_out, near_run, self.counts, near_bits) for p in range(partitions)
        ]
        for exact, near in self.executor.map(assemble, calls, self._tick):
            summary.exact_duplicates += exact
            summary.near_duplicates += near
        summary.duplicates = summary.exact_duplicates + summary.near_duplicates
        members = [partition_file(directory, p, ".members.run") for p in range(partitions)]
        sizes: Counter[int] = Counter()
        sized = [(members, p) for p in range(partitions)]
        for found in self.executor.map(cluster_sizes, sized, self._tick):
            sizes.update(found)
        sizes[1] = summary.documents - summary.duplicates - sum(sizes.values())
        summary.cluster_sizes = {size: sizes[size] for size in sorted(sizes) if sizes[size]}
        spill = self.spill
        spill.remove([*exact_out, *members, *(p for p in (near_run, near_bits) if p is not None)])
        for p in range(partitions):
            suffixes = (".ids", ".off", ".sig", ".meta.json")
            spill.remove([partition_file(directory, p, s) for s in suffixes])
            kept = (".pos", ".keys", ".verdicts.npz")
            spill.keep([partition_file(directory, p, s) for s in kept])
        summary.spill_bytes = spill.bytes
        return summary

    def _exact(self) -> list[Path]:
        runs = self.exact_runs
        if self.params.method == "none":  # every document kept, with its key
            self.spill.remove(runs)
            return []
        ranges = self.exact_ranges
        self.summary.ranges += len(ranges)
        outputs = [self.directory / f"exact-{i:05d}.run" for i in range(len(ranges))]
        calls = [(runs, lo, hi, out) for (lo, hi), out in zip(ranges, outputs, strict=True)]
        self.executor.map(exact_range, calls, self._tick)
        self.spill.remove(runs)
        return outputs

    def _near(self, exact_out: Sequence[Path]) -> tuple[Path, Path]:
        directory, params, counts, summary = self.directory, self.params, self.counts, self.summary
        bits = directory / "exact.bits"
        self.executor.map(exact_bits, [(exact_out, counts, bits)], self._tick)
        runs, space, ranges = self.band_runs, self.band_space, self.band_ranges
        summary.ranges += len(ranges)
        outputs = [directory / f"edges-{i:05d}.run" for i in range(len(ranges))]
        calls = [
            (directory, runs, lo, space if hi is None else hi, counts, bits, params, out)
            for (lo, hi), out in zip(ranges, outputs, strict=True)
        ]
        for candidates, confirmed in self.executor.map(bucket_range, calls, self._tick):
            summary.candidate_pairs += candidates
            summary.confirmed_pairs += confirmed
        self.spill.remove([*runs, bits])
        near_run, near_bits = directory / "near.run", directory / "near.bits"
        self.executor.map(first_kept, [(outputs, counts, near_run, near_bits)], self._tick)
        self.spill.remove(outputs)
        return near_run, near_bits
