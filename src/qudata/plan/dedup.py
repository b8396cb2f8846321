"""The global dedup step of the partitioned plan: keys out of each partition, verdicts back.

Map 1 writes, per partition, the documents that passed every check with a
:class:`KeyWriter`; :func:`resolve` decides, over all partitions in input order,
which document of each cluster is kept (the first); map 2 reads a partition's
verdicts with :func:`read_verdicts`. Executors call these three functions only,
so how the keys are kept (in memory here; on disk later) is this module's affair.

Spill files live in ``directory`` (inside the run's staging folder).
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qudata.config import DedupConfig
from qudata.quality.dedup import DedupVerdict, make_deduplicator

__all__ = ["DedupSummary", "KeyWriter", "key_files", "read_verdicts", "resolve"]


def _keys_path(directory: Path, partition: int) -> Path:
    return directory / f"keys-{partition:06d}.pickle"


def _verdicts_path(directory: Path, partition: int) -> Path:
    return directory / f"verdicts-{partition:06d}.pickle"


def key_files(directory: Path, partition: int) -> list[Path]:
    """The files a partition's :class:`KeyWriter` left (kept for ``--resume``)."""
    return [_keys_path(directory, partition)]


class KeyWriter:
    """The dedup keys of one partition's documents, in input order."""

    def __init__(self, directory: Path, partition: int, dedup: DedupConfig) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = _keys_path(directory, partition)
        self._items: list[tuple[int, str, str]] = []

    def add_batch(self, items: Sequence[tuple[int, str, str]]) -> None:
        """``(position in the partition, document id, text compared)`` of each document."""
        self._items.extend(items)

    def close(self) -> None:
        with open(self.path, "wb") as out:
            pickle.dump(self._items, out, protocol=pickle.HIGHEST_PROTOCOL)
        self._items = []


@dataclass
class DedupSummary:
    """What the step did, for the manifest and the report."""

    documents: int = 0
    duplicates: int = 0
    cluster_sizes: dict[int, int] = field(default_factory=dict)
    spill_bytes: int = 0


def resolve(directory: Path, partitions: int, dedup: DedupConfig) -> DedupSummary:
    """Every partition's verdicts: the first copy of a cluster in input order is kept."""
    summary = DedupSummary()
    deduplicator = make_deduplicator(
        dedup.method,
        threshold=dedup.threshold,
        num_perm=dedup.num_perm,
        ngram=dedup.ngram,
        workers=1,
    )
    assert deduplicator is not None
    try:
        for partition in range(partitions):
            path = _keys_path(directory, partition)
            summary.spill_bytes += path.stat().st_size
            with open(path, "rb") as handle:
                items: list[tuple[int, str, str]] = pickle.load(handle)
            verdicts = deduplicator.check_batch([(doc_id, text) for _, doc_id, text in items])
            result = {pos: v for (pos, _, _), v in zip(items, verdicts, strict=True)}
            summary.documents += len(result)
            summary.duplicates += sum(v.duplicate_of is not None for v in verdicts)
            with open(_verdicts_path(directory, partition), "wb") as out:
                pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        deduplicator.close()
    return summary


def read_verdicts(directory: Path, partition: int) -> dict[int, DedupVerdict]:
    """Position in the partition -> verdict, for every document given to its KeyWriter."""
    with open(_verdicts_path(directory, partition), "rb") as handle:
        verdicts: dict[int, Any] = pickle.load(handle)
    return verdicts
