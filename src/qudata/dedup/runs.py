"""Sorted runs on disk: numpy records ordered by a ``key`` field (uint64), read by key range.

The global dedup step never merges runs record by record. A run is a raw file of
records sorted by ``key``; a consumer takes one key range ``[lo, hi)`` at a time
and reads that slice of every run (a binary search on a memory map touches a few
pages, then one plain read; a run of up to 1 MiB is read whole), so its memory is
bounded by the range, which :func:`key_ranges` sizes from the budget. Keys are
hashes or document references, so equal-width ranges are balanced, and equal keys
never straddle two ranges.
Each range is independent of the others: an executor may process them in parallel.

    >>> import numpy as np, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> keys = np.array([(3,), (1,), (2,)], dtype=[("key", "<u8")])
    >>> write_run(d / "a.run", keys)
    >>> read_range([d / "a.run"], keys.dtype, 2, None)["key"].tolist()
    [2, 3]
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KEY_SPACE", "key_ranges", "read_range", "ref", "write_run"]

#: Keys are uint64: the key space is [0, 2**64).
KEY_SPACE = 2**64

#: A range holds its records about this many times over while it is sorted and
#: grouped (the read, the sort order, the sorted copy, the group arrays).
WORK_FACTOR = 6


def ref(partition: int | np.ndarray, index: Any) -> Any:
    """A document's reference: its partition in the high 32 bits, its index below
    (so references sort in input order)."""
    return (np.uint64(partition) << np.uint64(32)) | np.asarray(index, dtype=np.uint64)


def write_run(path: Path, records: np.ndarray, *, order: Sequence[str] = ()) -> None:
    """``records`` sorted by ``key`` (then by the fields of ``order``; in no particular
    order within a key otherwise), written raw."""
    if len(records) > 1 and order:
        fields = [records[name] for name in reversed(order)]
        records = records[np.lexsort([*fields, records["key"]])]
    elif len(records) > 1:
        records = records[np.argsort(records["key"])]
    with open(path, "wb") as out:
        records.tofile(out)


#: A run up to this size is read whole to find a range (a memory map costs more).
SMALL_RUN_BYTES = 1 << 20


def _slice(path: Path, dtype: np.dtype[Any], lo: int, hi: int | None) -> np.ndarray:
    size = os.path.getsize(path)
    count = size // dtype.itemsize
    if count == 0:
        return np.empty(0, dtype)
    small = size <= SMALL_RUN_BYTES
    records: np.ndarray = (
        np.fromfile(path, dtype=dtype, count=count)
        if small
        else np.memmap(path, dtype=dtype, mode="r", shape=(count,))
    )
    keys = records["key"]
    start = int(np.searchsorted(keys, np.uint64(lo))) if lo else 0
    stop = count if hi is None else int(np.searchsorted(keys, np.uint64(hi)))
    del keys
    if stop <= start:
        return np.empty(0, dtype)
    if small:
        return records[start:stop]
    del records  # the map: the range is read plainly
    return np.fromfile(path, dtype=dtype, count=stop - start, offset=start * dtype.itemsize)


def read_range(paths: Sequence[Path], dtype: np.dtype[Any], lo: int, hi: int | None) -> np.ndarray:
    """The records of every run with ``lo <= key < hi`` (``hi`` None: no upper bound),
    concatenated (not merged: sort them if order matters)."""
    parts = [_slice(path, dtype, lo, hi) for path in paths]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def key_ranges(
    total_bytes: int, budget: int, *, space: int = KEY_SPACE
) -> list[tuple[int, int | None]]:
    """Equal-width ranges of ``[0, space)``, as many as make ``total_bytes`` of records
    fit ``budget`` while processed (``hi`` of the last range is None)."""
    count = max(1, math.ceil(total_bytes * WORK_FACTOR / max(1, budget)))
    bounds = [space * i // count for i in range(count)]
    return [(lo, bounds[i + 1] if i + 1 < count else None) for i, lo in enumerate(bounds)]
