"""Sorted runs read by key range: the records of every run in ``[lo, hi)``, whether the run
is read whole (small) or searched through a memory map (large)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qudata.dedup import runs
from qudata.dedup.runs import key_ranges, read_range, write_run

DTYPE = np.dtype([("key", "<u8"), ("ref", "<u8")])


def _run(path: Path, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    records = np.empty(count, DTYPE)
    records["key"] = rng.integers(0, 2**64, size=count, dtype=np.uint64)
    if count >= 10:
        records["key"][: count // 10] = records["key"][count // 10]  # equal keys
    records["ref"] = np.arange(count, dtype=np.uint64)
    write_run(path, records)
    return records


@pytest.mark.parametrize("count", [0, 1, 1000, 100_000])  # 100,000 records: 1.6 MB
def test_a_range_is_the_records_of_every_run_with_keys_in_it(tmp_path: Path, count: int) -> None:
    paths = [tmp_path / "a.run", tmp_path / "b.run"]
    records = np.concatenate([_run(paths[0], count, 1), _run(paths[1], count // 3, 2)])
    assert (paths[0].stat().st_size > runs.SMALL_RUN_BYTES) == (count == 100_000)
    seen = []
    for lo, hi in [*key_ranges(10**9, 10**9 // 2), (0, None), (2**63, 2**63 + 2**40)]:
        got = read_range(paths, DTYPE, lo, hi)
        inside = (records["key"] >= np.uint64(lo)) & (
            True if hi is None else records["key"] < np.uint64(hi)
        )
        assert sorted(got["ref"].tolist()) == sorted(records["ref"][inside].tolist())
        seen.append(len(got))
    assert sum(seen[: len(key_ranges(10**9, 10**9 // 2))]) == len(records)


def test_the_memory_map_and_the_whole_read_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.run"
    _run(path, 5000, 3)
    bounds = [(0, None), (2**62, 2**63), (2**63, None), (5, 6)]
    whole = [read_range([path], DTYPE, lo, hi) for lo, hi in bounds]
    monkeypatch.setattr(runs, "SMALL_RUN_BYTES", 0)  # every run through the memory map
    mapped = [read_range([path], DTYPE, lo, hi) for lo, hi in bounds]
    assert [w.tolist() for w in whole] == [m.tolist() for m in mapped]
