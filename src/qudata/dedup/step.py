"""The global dedup step of the partitioned plan: keys out of each partition, verdicts back.

Map 1 writes, per partition, the documents that passed every check with a
:class:`KeyWriter` (exact keys, MinHash signatures, sorted runs; see
:mod:`qudata.dedup.keys`); :func:`resolve` decides, over all partitions in input
order, which document of each cluster is kept (the first); map 2 reads a partition's
verdicts with :func:`read_verdicts`. Executors call these three functions only.

Everything lives in ``directory`` (inside the run's staging folder), and memory is
bounded by ``dedup.memory``, not by the corpus: runs are written when a partition's
buffer reaches its share, and ``resolve`` works one key range at a time
(:mod:`qudata.dedup.runs`). Its steps are calls of pure, top-level functions of files,
run by the run's executor (worker processes, Ray tasks), not by the driver itself:

1. exact, per key range (:func:`qudata.dedup.exact.exact_range`), in parallel;
2. near: the exact duplicates as bits (:func:`~qudata.dedup.exact.exact_bits`,
   one call), per band key range the confirmed pairs
   (:func:`qudata.dedup.near.bucket_range`), in parallel, then the rule over
   the confirmed pairs in input order (:func:`~qudata.dedup.near.first_kept`:
   a document names the earliest *kept* document it is similar to), one call;
3. per partition, the verdicts (:func:`qudata.dedup.verdicts.assemble`), then
   the cluster sizes, in parallel.

Two calls stay sequential over all documents, each one task: ``exact_bits``, the
union of every range's duplicates into one bit set (cheap: a pass over the exact
duplicates), and ``first_kept``, whose rule is an order: whether a document is kept
depends on the verdicts of the earlier documents it is similar to, so the pairs are
taken in input order. Each holds one bit per document (12.5 MB per 100 million
documents) and one output or one partition's pairs at a time. The driver only lists
the files, hands out the calls and adds up their counts: it holds no per-document
state. (The local engine with one worker runs every call in its own process.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from qudata.config import DedupConfig
from qudata.dedup import DedupVerdict
from qudata.dedup.files import DedupParams
from qudata.dedup.keys import KeyWriter
from qudata.dedup.resolve import Resolution
from qudata.dedup.summary import DedupSummary
from qudata.dedup.verdicts import PartitionVerdicts
from qudata.executor import Executor, Progress, StagingFiles

__all__ = ["DedupSummary", "KeyWriter", "key_files", "read_verdicts", "resolve"]


def resolve(
    directory: Path,
    partitions: int,
    dedup: DedupConfig,
    *,
    memory: int | str | None = None,
    executor: Executor | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    files: StagingFiles | None = None,
) -> DedupSummary:
    """Every partition's verdicts: the first copy of a cluster in input order is kept.

    ``memory`` overrides ``dedup.memory``. ``executor`` (the run's: the local pool,
    Ray) runs the steps; without one, a local executor of ``workers`` processes
    (1: this process) does, and is closed at the end. ``progress`` gets the phase
    ``dedup`` in tasks (each call over a key range, a partition or all documents).
    ``files``: how this process sees ``directory``'s files (default: where they are).

    Example::

        summary = resolve(staging / "dedup", 4, DedupConfig(method="near"))
    """
    own = executor is None
    if executor is None:
        from qudata.engines.local import LocalExecutor

        executor = LocalExecutor(workers)
    try:
        params = DedupParams.of(dedup, memory)
        return Resolution(directory, partitions, params, executor, progress, files).run()
    finally:
        if own:
            executor.close()


def key_files(directory: Path, partition: int) -> list[Path]:
    """The files a partition's :class:`KeyWriter` left (recorded for ``--resume``)."""
    return sorted(directory.glob(f"{partition:06d}*"))


def read_verdicts(directory: Path, partition: int) -> Mapping[int, DedupVerdict]:
    """Position in the partition -> verdict, for every document given to its KeyWriter
    (a lazy mapping over the partition's files)."""
    return PartitionVerdicts(directory, partition)
