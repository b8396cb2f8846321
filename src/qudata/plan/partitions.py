"""A job's input as an ordered list of partitions, the unit every executor schedules.

A partition is a whole input file; a byte range of a large uncompressed JSON Lines
file cut at line starts; a run of row groups of a large Parquet file; or a slice of
consecutive text files (a folder of many small ``.txt``/``.md`` files would otherwise
be one task per file). Compressed files and JSON files are one partition each. The
cut points depend on the input alone (never on the number of workers), and the
stages' output does not depend on them either: documents keep their input order,
and line (row) numbers are fixed up from the line counts of the partitions before
(see :func:`line_starts`).

    >>> [p.span for p in plan_partitions([Source("a.jsonl", "jsonl", "a.jsonl")], 0)]
    [None]
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass

from qudata.errors import QudataError
from qudata.io.sources import Source
from qudata.io.uri import is_uri, open_stored, remote_size

__all__ = ["MAX_PARTITION_BYTES", "Partition", "line_starts", "partition_bytes", "plan_partitions"]

#: The most text files in one slice (their sizes may be unknown: remote files).
MAX_TEXT_FILES = 1024

#: The largest byte range of one partition; smaller inputs are cut finer (see
#: :func:`partition_bytes`) so that every worker has work.
MAX_PARTITION_BYTES = 64 << 20
MIN_PARTITION_BYTES = 1 << 20
#: Cut an input into about this many partitions (bounded by the sizes above).
TARGET_PARTITIONS = 32


@dataclass(frozen=True, slots=True)
class Partition:
    """One unit of work: ``source``, and when it is part of a file, ``span`` (bytes
    ``[start, end)`` of JSON Lines) or ``row_groups`` (``[first, end)`` of Parquet);
    ``piece`` numbers the pieces of one file from 0; ``more``: the text files read
    after ``source`` in a slice of text files; ``size`` is the stored bytes it covers
    (its share of the progress bar)."""

    index: int
    source: Source
    span: tuple[int, int] | None = None
    piece: int = 0
    pieces: int = 1
    size: int = 0
    row_groups: tuple[int, int] | None = None
    more: tuple[Source, ...] = ()
    rows: int = 0  # the rows of a run of row groups (their line count)

    @property
    def sources(self) -> tuple[Source, ...]:
        """Every input file the partition reads, in order."""
        return (self.source, *self.more)


def partition_bytes(total: int) -> int:
    """The byte size of a partition for ``total`` bytes of input: about
    ``total / TARGET_PARTITIONS``, between 1 MiB and 64 MiB."""
    return max(MIN_PARTITION_BYTES, min(MAX_PARTITION_BYTES, total // TARGET_PARTITIONS))


def _size(source: Source) -> int:
    """The stored bytes of ``source``: for a URI from its listing or its metadata
    (fsspec), 0 when unknown (standard input, a missing or unreadable file: the reader
    reports it)."""
    if source.path == "-" or source.problem is not None:
        return 0
    if is_uri(source.path):
        try:
            return remote_size(source.path)
        except QudataError:  # unreadable now: the reader reports it
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


def _remote_cuts(path: str, size: int, step: int) -> list[int]:
    """:func:`_cuts` of a URI: a ranged read of 64 KiB (more for a longer line) at each
    cut, never the whole object."""
    cuts = [0]
    at = step
    while at < size:
        window = 1 << 16
        while True:  # to the end of the line that holds byte ``at - 1``
            stop = min(size, at - 1 + window)
            with open_stored(path, (at - 1, stop)) as handle:
                found = handle.read().find(b"\n")
            if found >= 0 or stop >= size:
                cut = at + found if found >= 0 else size
                break
            window *= 4
        if cut >= size:
            break
        if cut > cuts[-1]:
            cuts.append(cut)
        at = cut + step
    cuts.append(size)
    return cuts


def _cuts(path: str, size: int, step: int) -> list[int]:
    """Byte offsets of line starts about ``step`` apart (0 first, ``size`` last)."""
    if is_uri(path):
        return _remote_cuts(path, size, step)
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


def _row_groups(path: str, step: int) -> list[tuple[int, int, int, int]]:
    """Runs of consecutive row groups of about ``step`` stored bytes: ``(first, end,
    bytes, rows)``; none when the footer cannot be read (the reader reports it)."""
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
    except Exception:  # no pyarrow, or not readable: one partition, the reader says why
        return []
    runs: list[tuple[int, int, int, int]] = []
    first, stored, rows = 0, 0, 0
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        stored += sum(row_group.column(c).total_compressed_size for c in range(meta.num_columns))
        rows += row_group.num_rows
        if stored >= step:
            runs.append((first, group + 1, stored, rows))
            first, stored, rows = group + 1, 0, 0
    if first < meta.num_row_groups:
        runs.append((first, meta.num_row_groups, stored, rows))
    return runs


def _pieces(source: Source, size: int, step: int, start: int) -> list[Partition]:
    """The pieces of one large file, numbered from ``start``; [] if it stays whole."""
    if source.problem is not None or source.path == "-":
        return []
    if source.kind == "parquet":
        runs = _row_groups(source.path, step)
        return [
            Partition(start + n, source, None, n, len(runs), stored, (first, end), rows=rows)
            for n, (first, end, stored, rows) in enumerate(runs)
        ] if len(runs) > 1 else []  # fmt: skip
    if not _splittable(source):
        return []
    try:
        cuts = _cuts(source.path, size, step)
    except (OSError, QudataError):  # unreadable now: the reader reports it
        return []
    pieces = len(cuts) - 1
    return [
        Partition(start + piece, source, (first, end), piece, pieces, end - first)
        for piece, (first, end) in enumerate(itertools.pairwise(cuts))
    ] if pieces > 1 else []  # fmt: skip


def plan_partitions(sources: Sequence[Source], step: int | None = None) -> list[Partition]:
    """The partitions of ``sources`` in input order; ``step``: the byte size of a piece
    (default :func:`partition_bytes` of the whole input; 0: one partition per file)."""
    sizes = [_size(s) for s in sources]
    if step is None:
        step = partition_bytes(sum(sizes))
    out: list[Partition] = []
    texts: list[Source] = []  # the slice of text files being gathered, and its bytes
    stored = 0

    def close_slice() -> None:
        nonlocal stored
        if texts:
            out.append(Partition(len(out), texts[0], size=stored, more=tuple(texts[1:])))
            texts.clear()
            stored = 0

    for source, size in zip(sources, sizes, strict=True):
        if source.kind == "text" and step > 0:
            texts.append(source)
            stored += size
            if stored >= step or len(texts) >= MAX_TEXT_FILES:
                close_slice()
            continue
        close_slice()
        pieces = _pieces(source, size, step, len(out)) if 0 < step < size else []
        out.extend(pieces or [Partition(len(out), source, size=size)])
    close_slice()
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
