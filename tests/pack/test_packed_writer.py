"""The packed writer: rows hold every sequence once, whole, with its own mask, and
lengths and positions that add up; shards by rows; nothing left behind."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qudata.pack.packed_writer import PackedWriter

pq = pytest.importorskip("pyarrow.parquet")

RECORDS = st.lists(
    st.one_of(
        st.tuples(st.integers(1, 40), st.integers(0, 40), st.integers(0, 40)),  # a chat
        st.tuples(st.integers(1, 90), st.none(), st.none()),  # plain text
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(RECORDS, st.sampled_from(["bfd", "sequential"]), st.sampled_from([None, 3]))
def test_rows_hold_every_sequence_once(cases: Any, strategy: str, shard_rows: Any) -> None:
    seq_len = 40
    directory = Path(tempfile.mkdtemp(prefix="qudata-packed-"))
    try:
        writer = PackedWriter(
            directory / "packed", "train", relative_to=directory, seq_len=seq_len,
            strategy=strategy, max_records=shard_rows,
        )  # fmt: skip
        chats: dict[str, tuple[list[int], list[int]]] = {}
        stream: list[int] = []
        for number, (length, low, high) in enumerate(cases):
            ids = [number * 100 + k for k in range(length)]
            if low is None:
                writer.write_document([{"doc": f"p{number}", "ids": ids}], tokens=length)
                stream += ids
                continue
            low, high = sorted((min(low, length), min(high, length)))
            record = {"doc": f"c{number}", "ids": ids, "spans": [[low, high]]}
            writer.write_document([record], tokens=length)
            chats[f"c{number}"] = (ids, [int(low <= k < high) for k in range(length)])
        files = writer.close()
        rows = [r for f in files for r in pq.read_table(directory / f.path).to_pylist()]
        assert sum(f.tokens for f in files) == sum(len(r["input_ids"]) for r in rows)
        assert sum(f.records for f in files) == len(rows)
        if shard_rows:
            assert all(f.records <= shard_rows for f in files)
        seen_stream: list[int] = []
        for row in rows:
            assert 0 < len(row["input_ids"]) <= seq_len
            assert sum(row["seq_lengths"]) == len(row["input_ids"])
            at = 0
            for doc, length in zip(row["doc_ids"], row["seq_lengths"], strict=True):
                assert row["position_ids"][at : at + length] == list(range(length))
                ids, mask = (
                    row["input_ids"][at : at + length],
                    row["assistant_masks"][at : at + length],
                )
                if doc.startswith("c"):
                    assert (ids, mask) == chats.pop(doc)  # once, whole, its own mask
                else:
                    assert mask == [1] * length
                    seen_stream += ids
                at += length
        assert not chats
        assert sorted(seen_stream) == sorted(stream)
        if strategy == "sequential":
            assert seen_stream == stream
        assert not list((directory / "packed").glob(".*"))
    finally:
        shutil.rmtree(directory)
