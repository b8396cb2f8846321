"""A job's input as an ordered list of partitions, the unit every executor schedules.

A partition is a whole input file, or a byte range of a large uncompressed JSON
Lines file cut at line starts. Compressed files, JSON, Parquet and text files are
one partition each. The cut points depend on the input alone (never on the number
of workers), and the stages' output does not depend on them either: documents keep
their input order, and line numbers are fixed up from the line counts of the
partitions before (see :func:`line_starts`).

    >>> [p.span for p in plan_partitions([Source("a.jsonl", "jsonl", "a.jsonl")], 0)]
    [None]
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass

from qudata.io.sources import Source

__all__ = ["MAX_PARTITION_BYTES", "Partition", "line_starts", "partition_bytes", "plan_partitions"]

#: The largest byte range of one partition; smaller inputs are cut finer (see
#: :func:`partition_bytes`) so that every worker has work.
MAX_PARTITION_BYTES = 64 << 20
MIN_PARTITION_BYTES = 1 << 20
#: Cut an input into about this many partitions (bounded by the sizes above).
TARGET_PARTITIONS = 32


@dataclass(frozen=True, slots=True)
class Partition:
    """One unit of work: ``source``, and ``span`` (bytes ``[start, end)``) when it is
    part of a file; ``piece`` numbers the pieces of one file from 0; ``size`` is the
    stored bytes it covers (its share of the progress bar)."""

    index: int
    source: Source
    span: tuple[int, int] | None = None
    piece: int = 0
    pieces: int = 1
    size: int = 0


def partition_bytes(total: int) -> int:
    """The byte size of a partition for ``total`` bytes of input: about
    ``total / TARGET_PARTITIONS``, between 1 MiB and 64 MiB."""
    return max(MIN_PARTITION_BYTES, min(MAX_PARTITION_BYTES, total // TARGET_PARTITIONS))


def _size(source: Source) -> int:
    if source.path == "-" or source.problem is not None:
        return 0
    try:
        return os.path.getsize(source.path)
    except OSError:
        return 0


def _splittable(source: Source) -> bool:
    lower = source.path.lower()
    return (
        source.kind == "jsonl"
        and source.problem is None
        and source.path != "-"
        and not lower.endswith((".gz", ".zst"))
    )


def _cuts(path: str, size: int, step: int) -> list[int]:
    """Byte offsets of line starts about ``step`` apart (0 first, ``size`` last)."""
    cuts = [0]
    with open(path, "rb") as handle:
        at = step
        while at < size:
            handle.seek(at - 1)
            handle.readline()  # to the end of the line that holds byte ``at - 1``
            cut = handle.tell()
            if cut >= size:
                break
            if cut > cuts[-1]:
                cuts.append(cut)
            at = cut + step
    cuts.append(size)
    return cuts


def plan_partitions(sources: Sequence[Source], step: int | None = None) -> list[Partition]:
    """The partitions of ``sources`` in input order; ``step``: the byte size of a piece
    (default :func:`partition_bytes` of the whole input; 0: never cut a file)."""
    sizes = [_size(s) for s in sources]
    if step is None:
        step = partition_bytes(sum(sizes))
    out: list[Partition] = []
    for source, size in zip(sources, sizes, strict=True):
        if step <= 0 or size <= step or not _splittable(source):
            out.append(Partition(len(out), source, size=size))
            continue
        try:
            cuts = _cuts(source.path, size, step)
        except OSError:  # unreadable now: the reader reports it
            out.append(Partition(len(out), source, size=size))
            continue
        pieces = len(cuts) - 1
        for piece, (start, end) in enumerate(itertools.pairwise(cuts)):
            out.append(Partition(len(out), source, (start, end), piece, pieces, end - start))
    return out


def line_starts(partitions: Sequence[Partition], lines: Sequence[int]) -> list[int]:
    """The number of the first line of each partition, from the line count of each
    (pieces of one file continue its numbering; every other partition starts at 1)."""
    starts = []
    following = 1
    for partition, count in zip(partitions, lines, strict=True):
        if partition.piece == 0:
            following = 1
        starts.append(following)
        following += count
    return starts
