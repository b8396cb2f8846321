"""Packing sequences into rows of at most ``capacity`` tokens: best-fit decreasing or
sequential, over a whole split.

Best-fit decreasing takes the sequences longest first (ties in input order) and puts
each in the open row with the *least* free room that still fits it, opening a row when
none does. The open rows are found through a segment tree over free capacities
(``0..capacity``): each leaf counts the rows with that much room, and the smallest room
``>= length`` is found in ``O(log capacity)``. Memory is numpy arrays of the lengths,
their order and one row number per sequence, 8 bytes per row with room left, and Python
objects for one chunk of sequences at a time: about 30 bytes per sequence (10 million
sequences: 290 MB, 30 s on one core). The result depends only on the lengths, so it is
the same for any number of workers.

:func:`rows_lower_bound` is Martello and Toth's bound L2: no packing of the lengths, by
any algorithm, needs fewer rows. It is at least ``ceil(tokens / capacity)`` and sees what
that bound does not: sequences that cannot share a row.

    >>> pack_bfd([3, 5, 2, 4], 7).tolist()  # rows: [5, 2] and [3, 4]
    [1, 0, 0, 1]
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CapacityTree", "pack", "pack_bfd", "pack_sequential", "rows_lower_bound"]


_CHUNK = 1 << 16  # sequences placed per batch of Python ints


class CapacityTree:
    """How many open rows have each free capacity, and the smallest capacity that fits."""

    def __init__(self, capacity: int) -> None:
        size = 1
        while size < capacity + 1:
            size *= 2
        self.size = size
        self.counts = [0] * (2 * size)

    def add(self, room: int, delta: int) -> None:
        """``delta`` more (or fewer) rows with ``room`` free tokens."""
        node = self.size + room
        while node:
            self.counts[node] += delta
            node //= 2

    def smallest_at_least(self, length: int) -> int | None:
        """The least free capacity ``>= length`` that some open row has."""
        counts, node = self.counts, self.size + length
        if counts[node]:
            return length
        while node > 1:
            if not node & 1 and counts[node + 1]:
                node += 1
                break
            node //= 2
        else:
            return None
        while node < self.size:
            node = 2 * node if counts[2 * node] else 2 * node + 1
        return node - self.size


def pack_bfd(lengths: Any, capacity: int) -> np.ndarray[Any, Any]:
    """The row of each sequence under best-fit decreasing (rows numbered as opened)."""
    import numpy as np

    sizes = np.asarray(lengths, dtype=np.int64)
    _check(sizes, capacity)
    order = np.argsort(-sizes, kind="stable")
    rows = np.empty(len(sizes), dtype=np.int64)
    tree = CapacityTree(capacity)
    by_room: dict[int, array[int]] = {}  # free capacity -> open rows (the last opened first)
    opened = 0
    for start in range(0, len(order), _CHUNK):  # Python ints for a chunk at a time only
        chunk = order[start : start + _CHUNK]
        placed = array("q")
        for length in sizes[chunk].tolist():
            room = tree.smallest_at_least(length)
            if room is None:
                row, left = opened, capacity - length
                opened += 1
            else:
                row = by_room[room].pop()
                tree.add(room, -1)
                left = room - length
            placed.append(row)
            if left:
                rooms = by_room.get(left)
                if rooms is None:
                    rooms = by_room[left] = array("q")
                rooms.append(row)
                tree.add(left, 1)
        rows[chunk] = np.frombuffer(placed, dtype=np.int64)
    return rows


def pack_sequential(lengths: Any, capacity: int) -> np.ndarray[Any, Any]:
    """The row of each sequence when rows are filled in input order."""
    import numpy as np

    sizes = np.asarray(lengths, dtype=np.int64)
    _check(sizes, capacity)
    rows = np.empty(len(sizes), dtype=np.int64)
    row, used = -1, capacity
    for index, length in enumerate(sizes.tolist()):
        if used + length > capacity:
            row, used = row + 1, 0
        rows[index] = row
        used += length
    return rows


def pack(lengths: Any, capacity: int, strategy: str) -> np.ndarray[Any, Any]:
    """:func:`pack_bfd` or :func:`pack_sequential`, by name."""
    return pack_bfd(lengths, capacity) if strategy == "bfd" else pack_sequential(lengths, capacity)


def rows_lower_bound(lengths: Any, capacity: int) -> int:
    """Martello and Toth's L2 lower bound on the rows any packing needs.

    For each ``k`` up to half a row: the sequences longer than ``capacity - k`` share
    their row with no sequence of at least ``k``; those over half a row share a row with
    no other of them; so the rows are at least the count of both, plus what the sequences
    of ``k`` to half a row leave over once the half-row sequences' free room is used. The
    bound is the largest over ``k`` (only the lengths up to half a row need trying).

    >>> rows_lower_bound([6, 6, 6, 2], 10), -(-20 // 10)  # three 6s cannot share a row
    (3, 2)
    """
    import numpy as np

    sizes = np.sort(np.asarray(lengths, dtype=np.int64))
    _check(sizes, capacity)
    if not len(sizes):
        return 0
    sums = np.concatenate([[0], np.cumsum(sizes)])
    half = int(np.searchsorted(sizes, capacity // 2, side="right"))  # sizes[half:] > C/2
    ks = np.unique(np.concatenate([[0], sizes[:half]]))
    top = np.searchsorted(sizes, capacity - ks, side="right")  # sizes[top:] > C - k
    low = np.searchsorted(sizes, ks, side="left")  # sizes[low:half] in [k, C/2]
    alone = len(sizes) - top
    large = top - half  # in (C/2, C - k]
    room = large * capacity - (sums[top] - sums[half])
    rest = np.maximum(0, (sums[half] - sums[low]) - room)
    bounds = alone + large + -(-rest // capacity)
    return max(int(bounds.max()), int(-(-int(sums[-1]) // capacity)))


def _check(sizes: Any, capacity: int) -> None:
    if len(sizes) and (int(sizes.min()) < 1 or int(sizes.max()) > capacity):
        raise ValueError(f"a sequence length is outside 1..{capacity}")
