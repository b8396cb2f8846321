"""Packing sequences into rows of at most ``capacity`` tokens: best-fit decreasing or
sequential, over a whole split.

Best-fit decreasing takes the sequences longest first (ties in input order) and puts
each in the open row with the *least* free room that still fits it, opening a row when
none does. The open rows are found through a segment tree over free capacities
(``0..capacity``): each leaf counts the rows with that much room, and the smallest room
``>= length`` is found in ``O(log capacity)``. Memory is the lengths and one row number
per sequence (numpy arrays), whatever the split's size; the result depends only on the
lengths, so it is the same for any number of workers.

    >>> pack_bfd([3, 5, 2, 4], 7).tolist()  # rows: [5, 2] and [3, 4]
    [1, 0, 0, 1]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CapacityTree", "pack", "pack_bfd", "pack_sequential"]


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
    by_room: dict[int, list[int]] = {}  # free capacity -> open rows (the last opened first)
    opened = 0
    for index, length in zip(order.tolist(), sizes[order].tolist(), strict=True):
        room = tree.smallest_at_least(length)
        if room is None:
            row, left = opened, capacity - length
            opened += 1
        else:
            row = by_room[room].pop()
            tree.add(room, -1)
            left = room - length
        rows[index] = row
        if left:
            by_room.setdefault(left, []).append(row)
            tree.add(left, 1)
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


def _check(sizes: Any, capacity: int) -> None:
    if len(sizes) and (int(sizes.min()) < 1 or int(sizes.max()) > capacity):
        raise ValueError(f"a sequence length is outside 1..{capacity}")
