"""``pack.packed.layout: megatron_bridge``: Megatron-Bridge's packed Parquet.

Bridge's reader (``GPTSFTPackedParquetDataset``) needs Transformer Engine to import, so
the files are checked against its published layout and row invariants: the columns
``input_ids`` list<int32>, ``seq_start_id`` list<int32>, ``loss_mask`` list<int8>;
``seq_start_id`` starts at 0, increases, stays inside the row; ``loss_mask`` as long as
``input_ids`` and rolled by one within each sequence (its packer's rule: position ``i``
trains token ``i + 1``); and the metadata JSON's figures, recomputed from the rows.
The same input packed in TRL's layout gives the same rows, sequences and masks.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata

pq = pytest.importorskip("pyarrow.parquet")

ROWS = [
    {
        "id": f"c{n}",
        "messages": [
            {"role": "user", "content": f"Question {n}? " + "more words " * (n % 7)},
            {"role": "assistant", "content": f"Answer {n}. " + "detail " * (n % 11)},
        ],
    }
    for n in range(40)
] + [{"id": f"d{n}", "text": f"Plain document {n}. " * 30} for n in range(5)]


def _pack(tmp_path: Path, layout: str) -> Path:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in ROWS))
    out = tmp_path / layout
    config = {"pack": {"packed": {"seq_len": 256, "layout": layout}}}
    report = qudata.pack_dataset(source, out, formats=["packed"], config=config)
    assert report.balanced()
    return out


def _rows(out: Path, pattern: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted((out / "packed").glob(pattern)):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def test_bridge_layout_is_the_trl_rows_in_bridges_columns(tmp_path: Path) -> None:
    bridge_out, trl_out = _pack(tmp_path, "megatron_bridge"), _pack(tmp_path, "trl")
    files = sorted(p.name for p in (bridge_out / "packed").iterdir())
    assert files == ["train-00000-of-00001.idx.parquet", "train-metadata.json"]
    schema = pq.read_schema(bridge_out / "packed" / files[0])
    assert [(f.name, str(f.type)) for f in schema] == [
        ("input_ids", "list<element: int32>"),
        ("seq_start_id", "list<element: int32>"),
        ("loss_mask", "list<element: int8>"),
    ]
    bridge, trl = _rows(bridge_out, "*.idx.parquet"), _rows(trl_out, "*.parquet")
    assert len(bridge) == len(trl)
    sequences = 0
    for ours, theirs in zip(bridge, trl, strict=True):
        ids, starts, mask = ours["input_ids"], ours["seq_start_id"], ours["loss_mask"]
        # Bridge's invariants (GPTSFTPackedParquetDataset.validate_row)
        assert len(mask) == len(ids) and starts and starts[0] == 0
        assert all(a < b for a, b in itertools.pairwise(starts))
        assert all(s < len(ids) for s in starts)
        assert ids == theirs["input_ids"]
        lengths = [b - a for a, b in zip(starts, [*starts[1:], len(ids)], strict=True)]
        assert lengths == theirs["seq_lengths"]
        for start, length in zip(starts, lengths, strict=True):
            labels = theirs["assistant_masks"][start : start + length]
            assert mask[start : start + length] == [*labels[1:], 0]
        sequences += len(starts)
    metadata = orjson.loads((bridge_out / "packed" / "train-metadata.json").read_bytes())
    row_lengths = [len(r["input_ids"]) for r in bridge]
    assert metadata == [
        {
            "dataset_max_seqlen": max(max(r["seq_lengths"]) for r in trl),
            "max_samples_per_bin": max(len(r["seq_start_id"]) for r in bridge),
            "packing_factor": round(sequences / len(bridge), 2),
            "packing_efficiency": round(sum(row_lengths) / len(bridge) / 256 * 100, 2),
            "pack_size": 256,
            "min_packed_seqlen": min(row_lengths),
        }
    ]
    manifest = orjson.loads((bridge_out / "manifest.json").read_bytes())
    listed = [f["path"] for f in manifest["formats"]["packed"]["files"]]
    assert listed == ["packed/train-00000-of-00001.idx.parquet", "packed/train-metadata.json"]
