"""How a job's input is cut: byte ranges of JSON Lines, row groups of Parquet, slices of
text files; always in input order, covering every byte, row and file once."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest

from qudata.io.sources import Source, walk_inputs
from qudata.plan.partitions import MAX_TEXT_FILES, plan_partitions


def test_a_jsonl_file_is_cut_at_line_starts_covering_every_byte(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    data = b"".join(orjson.dumps({"text": "x" * (n % 97)}) + b"\n" for n in range(500))
    path.write_bytes(data)
    parts = plan_partitions([Source(str(path), "jsonl", "a.jsonl")], 4096)
    spans = [p.span for p in parts if p.span is not None]
    assert len(parts) > 3 and len(spans) == len(parts)
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end == start and data[start - 1 : start] == b"\n"
    assert [p.piece for p in parts] == list(range(len(parts)))
    assert {p.pieces for p in parts} == {len(parts)}


def test_a_parquet_file_is_cut_into_runs_of_row_groups(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "rows.parquet"
    texts = [f"row {n} " + "word " * (50 + n % 13) + str(n * 7919) for n in range(200)]
    pq.write_table(pa.table({"text": texts}), path, row_group_size=10)  # 20 row groups
    parts = plan_partitions([Source(str(path), "parquet", "rows.parquet")], 2048)
    groups = [p.row_groups for p in parts if p.row_groups is not None]
    assert len(parts) > 2 and len(groups) == len(parts)
    assert groups[0][0] == 0 and groups[-1][1] == 20
    for (_, end), (start, _) in itertools.pairwise(groups):
        assert end == start
    assert all(p.span is None and p.size > 0 for p in parts)
    # a file under the step, or no cutting at all: one partition of the whole file
    assert [p.row_groups for p in plan_partitions([parts[0].source], 1 << 30)] == [None]
    assert [p.row_groups for p in plan_partitions([parts[0].source], 0)] == [None]


def test_text_files_are_read_in_slices_of_about_the_step(tmp_path: Path) -> None:
    for n in range(30):
        (tmp_path / f"t{n:02}.txt").write_text("y" * 1000)
    sources = walk_inputs([str(tmp_path)]).sources
    parts = plan_partitions(sources, 3000)  # three files (3,000 bytes) per slice
    assert [len(p.sources) for p in parts] == [3] * 10
    assert [s for p in parts for s in p.sources] == sources
    assert [p.index for p in parts] == list(range(10))
    assert [len(p.sources) for p in plan_partitions(sources, 0)] == [1] * 30


def test_a_slice_ends_before_a_file_of_another_kind(tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("z")
    (tmp_path / "c.jsonl").write_bytes(b'{"text": "j"}\n')
    (tmp_path / "d.md").write_text("w")
    parts = plan_partitions(walk_inputs([str(tmp_path)]).sources, 1 << 20)
    assert [[Path(s.path).name for s in p.sources] for p in parts] == [
        ["a.txt", "b.txt"], ["c.jsonl"], ["d.md"],
    ]  # fmt: skip


def test_a_slice_holds_at_most_max_text_files(tmp_path: Path) -> None:
    sources = [Source(str(tmp_path / f"{n}.txt"), "text", f"{n}.txt") for n in range(2500)]
    parts = plan_partitions(sources, 1 << 20)  # the files do not exist: size 0 each
    assert [len(p.sources) for p in parts] == [MAX_TEXT_FILES, MAX_TEXT_FILES, 452]
