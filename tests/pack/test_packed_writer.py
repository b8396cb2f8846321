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

from qudata.pack.packed_entries import SequenceEncoder, entry, next_entry
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


def _write(writer: PackedWriter, via: str, record: dict[str, Any], length: int) -> None:
    """A record as map 2 hands it on: a JSON record (shuffled runs), or an int32 entry."""
    if via == "lists":
        writer.write_document([record], tokens=length)
    else:
        writer.write_encoded(SequenceEncoder().encode(record), tokens=[length])


@settings(max_examples=40, deadline=None)
@given(
    RECORDS,
    st.sampled_from(["bfd", "sequential"]),
    st.sampled_from([None, 3]),
    st.sampled_from(["lists", "entries"]),
)
def test_rows_hold_every_sequence_once(
    cases: Any, strategy: str, shard_rows: Any, via: str
) -> None:
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
                _write(writer, via, {"doc": f"p{number}", "ids": ids}, length)
                stream += ids
                continue
            low, high = sorted((min(low, length), min(high, length)))
            record = {"doc": f"c{number}", "ids": ids, "spans": [[low, high]]}
            _write(writer, via, record, length)
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


def test_a_document_s_entries_give_the_rows_its_records_give(tmp_path: Path) -> None:
    records = [
        {"doc": "a", "ids": list(range(1, 30)), "spans": [[3, 10], [20, 29]]},
        {"doc": "a", "ids": list(range(40, 52)), "spans": [[0, 12]]},
        {"doc": "b", "ids": list(range(60, 131))},  # plain text: cut into blocks
        {"doc": "c", "ids": [2**31 - 1, 0, 7], "spans": [[1, 2]]},
    ]
    tables = []
    for via in ("lists", "entries"):
        directory = tmp_path / via
        writer = PackedWriter(directory / "packed", "train", relative_to=directory, seq_len=32)
        if via == "lists":
            writer.write_document(records)
        else:
            encoder = SequenceEncoder()
            writer.write_encoded(b"".join(encoder.encode(r) for r in records))
        files = writer.close()
        tables.append([pq.read_table(directory / f.path).to_pylist() for f in files])
    assert tables[0] == tables[1] and sum(len(t) for t in tables[0]) >= 4


def test_a_cut_entry_is_an_error() -> None:
    import numpy as np

    data = entry([["d", 3, None]], [np.array([1, 2, 3])])
    assert next_entry(data + data, 0) == (data, len(data))
    with pytest.raises(ValueError, match="left"):
        next_entry(data[:-1], 0)
