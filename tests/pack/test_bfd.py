"""Best-fit decreasing and sequential packing: bounds, determinism, and a plain
reference implementation of best fit to compare with."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qudata.pack.bfd import CapacityTree, pack_bfd, pack_sequential, rows_lower_bound

LENGTHS = st.integers(1, 64).flatmap(
    lambda cap: st.tuples(st.just(cap), st.lists(st.integers(1, cap), max_size=200))
)


def reference_bfd(lengths: list[int], capacity: int) -> list[int]:
    """Best fit decreasing by scanning every open row (quadratic, obviously right)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rooms: list[int] = []
    changed: list[int] = []  # when each row last got its room
    rows = [0] * len(lengths)
    for clock, index in enumerate(order):
        fits = [r for r, room in enumerate(rooms) if room >= lengths[index]]
        if fits:
            best = min(rooms[r] for r in fits)
            # among rows with the same room, the tree takes the one that got it last
            row = max((r for r in fits if rooms[r] == best), key=lambda r: changed[r])
        else:
            row = len(rooms)
            rooms.append(capacity)
            changed.append(0)
        rooms[row] -= lengths[index]
        changed[row] = clock
        rows[index] = row
    return rows


def fill(rows: Any, lengths: list[int]) -> dict[int, int]:
    used: dict[int, int] = {}
    for row, length in zip(rows.tolist(), lengths, strict=True):
        used[row] = used.get(row, 0) + length
    return used


@settings(max_examples=150, deadline=None)
@given(LENGTHS)
def test_bfd_rows_are_within_capacity_and_match_plain_best_fit(case: Any) -> None:
    capacity, lengths = case
    rows = pack_bfd(lengths, capacity)
    used = fill(rows, lengths)
    assert all(u <= capacity for u in used.values())
    assert sorted(used) == list(range(len(used)))  # rows numbered as opened, no gap
    assert len(used) >= -(-sum(lengths) // capacity)  # the lower bound
    assert rows.tolist() == reference_bfd(lengths, capacity)
    assert pack_bfd(lengths, capacity).tolist() == rows.tolist()  # deterministic


@settings(max_examples=100, deadline=None)
@given(LENGTHS)
def test_bfd_never_needs_more_rows_than_sequential_by_much(case: Any) -> None:
    capacity, lengths = case
    bfd = len(fill(pack_bfd(lengths, capacity), lengths))
    sequential = fill(pack_sequential(lengths, capacity), lengths)
    assert all(u <= capacity for u in sequential.values())
    # first fit decreasing (and best fit) use at most 11/9 OPT + 6/9 rows; OPT <= sequential
    assert bfd <= 11 * len(sequential) / 9 + 1
    # sequential rows keep input order: each row is a run of consecutive sequences
    order = pack_sequential(lengths, capacity).tolist()
    assert order == sorted(order)


def test_bfd_packs_a_known_case_optimally() -> None:
    # 6 + 4, 5 + 5, 7 + 3: three full rows of 10
    assert pack_bfd([6, 5, 7, 4, 5, 3], 10).tolist() == [1, 2, 0, 1, 2, 0]


def test_lengths_outside_the_capacity_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        pack_bfd([3, 11], 10)
    with pytest.raises(ValueError, match="outside"):
        pack_sequential([0], 10)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 100), st.lists(st.tuples(st.integers(0, 100), st.booleans())))
def test_the_tree_finds_the_smallest_room_that_fits(capacity: int, ops: Any) -> None:
    tree, rooms = CapacityTree(capacity), [0] * (capacity + 1)
    for room, add in ops:
        room = min(room, capacity)
        if add or rooms[room] == 0:
            tree.add(room, 1)
            rooms[room] += 1
        else:
            tree.add(room, -1)
            rooms[room] -= 1
        for length in range(capacity + 1):
            expected = next((r for r in range(length, capacity + 1) if rooms[r]), None)
            assert tree.smallest_at_least(length) == expected


def test_trl_bfd_needs_as_many_rows_at_least() -> None:
    datasets = pytest.importorskip("datasets")
    data_utils = pytest.importorskip("trl.data_utils")
    lengths = [(n * 7919) % 1500 + 1 for n in range(600)]
    dataset = datasets.Dataset.from_dict({"input_ids": [[1] * n for n in lengths]})
    trl_rows = len(data_utils.pack_dataset(dataset, 2048, strategy="bfd"))
    ours = len(fill(pack_bfd(lengths, 2048), lengths))
    assert ours <= trl_rows
    assert ours >= -(-sum(lengths) // 2048)


def fewest_rows(lengths: list[int], capacity: int) -> int:
    """The optimal number of rows, by trying every way to fill the row of the first
    sequence left (exponential: for a handful of sequences only)."""
    from functools import cache

    @cache
    def solve(left: tuple[int, ...]) -> int:
        if not left:
            return 0
        first, rest = left[0], left[1:]
        best = len(left)
        for mask in range(1 << len(rest)):
            chosen = [rest[i] for i in range(len(rest)) if mask >> i & 1]
            if first + sum(chosen) <= capacity:
                others = tuple(rest[i] for i in range(len(rest)) if not mask >> i & 1)
                best = min(best, 1 + solve(others))
        return best

    return solve(tuple(sorted(lengths, reverse=True)))


SMALL = st.integers(2, 20).flatmap(
    lambda cap: st.tuples(st.just(cap), st.lists(st.integers(1, cap), max_size=9))
)


@settings(max_examples=200, deadline=None)
@given(SMALL)
def test_the_rows_bound_never_exceeds_the_optimum_nor_falls_under_the_token_bound(
    case: Any,
) -> None:
    capacity, lengths = case
    bound = rows_lower_bound(lengths, capacity)
    optimum = fewest_rows(lengths, capacity)
    assert -(-sum(lengths) // capacity) <= bound <= optimum
    assert optimum <= len(set(pack_bfd(lengths, capacity).tolist()))


def test_the_rows_bound_sees_sequences_that_cannot_share_a_row() -> None:
    # 20 sequences of 1,990 in rows of 2,048 leave gaps of 58; the 30 of 70 fit none of
    # them: 20 rows + ceil(2,100 / 2,048) = 22, where ceil(tokens / 2,048) says 21
    lengths = [1990] * 20 + [70] * 30
    assert -(-sum(lengths) // 2048) == 21
    assert rows_lower_bound(lengths, 2048) == 22 == len(set(pack_bfd(lengths, 2048).tolist()))
    # over half a row: no two share one, whatever the total
    assert rows_lower_bound([6, 6, 6], 10) == 3
    assert rows_lower_bound([], 10) == 0
