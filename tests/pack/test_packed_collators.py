"""-f packed read by ``datasets`` (a folder, a single file) and fed to the real padding-free
collators: TRL's ``DataCollatorForLanguageModeling(padding_free=True)`` and transformers'
``DataCollatorWithFlattening``. What they return must be exactly what the Parquet columns say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata

pq = pytest.importorskip("pyarrow.parquet")
datasets = pytest.importorskip("datasets")
torch = pytest.importorskip("torch")

SEQ_LEN = 384


def conversations(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k in range(n):
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": f"Question {k}? " + "word " * (k * 7 % 50)},
            {"role": "assistant", "content": f"Answer {k}. " + "more " * (k * 13 % 90)},
        ]
        if k % 3 == 0:  # a tool call and its result: in and out of the mask
            call = {"type": "function", "function": {"name": "now", "arguments": "{}"}}
            messages += [
                {"role": "user", "content": "And the time?"},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "content": "12:00"},
                {"role": "assistant", "content": "Noon."},
            ]
        out.append({"id": f"c{k}", "messages": messages})
    return out


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("collators")
    rows = [
        *conversations(60),
        *({"id": f"p{k}", "text": "Plain. " * (50 + 40 * k)} for k in range(3)),
    ]
    src = tmp / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = tmp / "out"
    config = {"pack": {"packed": {"seq_len": SEQ_LEN}}, "output": {"shard_records": 8}}
    report = qudata.pack_dataset(src, out, config=config, formats=["packed"])
    assert report.formats["packed"].dropped == {}
    return out / "packed"


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")


def parquet_rows(folder: Path) -> list[dict[str, Any]]:
    return [r for f in sorted(folder.glob("train-*.parquet")) for r in pq.read_table(f).to_pylist()]


def labels_of(row: dict[str, Any]) -> list[int]:
    """TRL's ``build_labels``: the token where the assistant mask is 1, else -100."""
    return [i if m else -100 for i, m in zip(row["input_ids"], row["assistant_masks"], strict=True)]


def expected(rows: list[dict[str, Any]]) -> dict[str, list[int]]:
    """The flattened batch the columns describe. The first token of each sequence is not
    in the loss (no token of its own sequence predicts it): the collators' -100 there."""
    ids, positions, labels = [], [], []
    for row in rows:
        ids += row["input_ids"]
        positions += row["position_ids"]
        pairs = zip(row["position_ids"], labels_of(row), strict=True)
        labels += [-100 if p == 0 else t for p, t in pairs]
    return {"input_ids": ids, "position_ids": positions, "labels": labels}


def test_datasets_loads_the_folder_and_a_single_file(packed: Path, offline: None) -> None:
    rows = parquet_rows(packed)
    files = sorted(packed.glob("train-*.parquet"))
    assert len(files) > 1
    by_folder = datasets.load_dataset(str(packed), split="train")
    assert by_folder.to_list() == rows
    one = datasets.load_dataset("parquet", data_files=str(files[1]), split="train")
    assert one.to_list() == pq.read_table(files[1]).to_pylist()
    assert by_folder.features["input_ids"].feature.dtype == "int32"
    assert by_folder.features["assistant_masks"].feature.dtype == "int8"


def test_conversations_start_outside_the_mask(packed: Path) -> None:
    """So for conversations the collators' first-token -100 changes nothing: labels are
    exactly -100 where ``assistant_masks`` is 0."""
    for row in parquet_rows(packed):
        at = 0
        for doc, length in zip(row["doc_ids"], row["seq_lengths"], strict=True):
            if doc.startswith("c"):
                assert row["assistant_masks"][at] == 0
                assert 1 in row["assistant_masks"][at : at + length]
            at += length


def test_trl_padding_free_collator_gives_the_columns(packed: Path, offline: None) -> None:
    pytest.importorskip("accelerate")  # trl's sft_trainer module imports it
    sft = pytest.importorskip("trl.trainer.sft_trainer")
    train = datasets.load_dataset(str(packed), split="train")
    train = train.map(lambda row: {"labels": labels_of(row)})
    collator = sft.DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    rows = train.to_list()
    for low in range(0, len(rows), 3):
        batch = rows[low : low + 3]
        features = [{k: r[k] for k in ("input_ids", "labels", "seq_lengths")} for r in batch]
        out = collator(features)
        want = expected(batch)
        for key in ("input_ids", "position_ids", "labels"):
            assert out[key].tolist() == [want[key]], key
        lengths = [n for r in batch for n in r["seq_lengths"]]
        bounds = [sum(lengths[:k]) for k in range(len(lengths) + 1)]
        assert out["cu_seq_lens_q"].tolist() == bounds
        assert out["max_length_q"] == max(lengths)


def test_transformers_flattening_collator_gives_the_columns(packed: Path, offline: None) -> None:
    """``DataCollatorWithFlattening`` restarts positions per feature, not per
    ``seq_lengths``: a packed row is fed as its sequences, one feature each."""
    transformers = pytest.importorskip("transformers")
    collator = transformers.DataCollatorWithFlattening(return_flash_attn_kwargs=True)
    rows = datasets.load_dataset(str(packed), split="train").to_list()
    for low in range(0, len(rows), 3):
        batch = rows[low : low + 3]
        features, lengths = [], []
        for row in batch:
            labels, at = labels_of(row), 0
            for length in row["seq_lengths"]:
                cut = slice(at, at + length)
                features.append({"input_ids": row["input_ids"][cut], "labels": labels[cut]})
                lengths.append(length)
                at += length
        out = collator(features)
        want = expected(batch)
        for key in ("input_ids", "position_ids", "labels"):
            assert out[key].tolist() == [want[key]], key
        assert out["cu_seq_lens_q"].tolist() == [sum(lengths[:k]) for k in range(len(lengths) + 1)]
