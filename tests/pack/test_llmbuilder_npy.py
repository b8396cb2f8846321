"""LLMBuilder token mode: ``<split>.npy``, every document's SentencePiece ids then EOS, read
back with numpy and with LLMBuilder's own ``TextDataset``."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

import qudata
from qudata.cli import cli
from qudata.errors import ConfigError, MissingExtraError
from qudata.pack.llmbuilder import LLMBuilderFormatter

spm = pytest.importorskip("sentencepiece")

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample.jsonl"
FAST = {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}
SPLIT = {"split": {"train": 0.8, "validation": 0.2}}


def train_model(path: Path, *, eos_id: int = 3) -> Path:
    """A tiny BPE model (vocabulary 160) trained on the sample's lines, ids as LLMBuilder's
    trainer sets them (pad 0, unk 1, bos 2, eos 3)."""
    lines = [
        line.strip()
        for row in SAMPLE.read_bytes().splitlines()[:60]
        for line in orjson.loads(row)["text"].splitlines()
        if line.strip()
    ][:400]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=160,
        model_type="bpe",
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=eos_id,
        minloglevel=2,
        num_threads=1,
    )
    path.write_bytes(model.getvalue())
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(tmp_path_factory.mktemp("spm") / "tokenizer.model")


def config(model: Path, **output: Any) -> dict[str, Any]:
    pack = {**FAST["pack"], "llmbuilder": {"tokenizer": str(model)}}
    return {**FAST, "pack": pack, "output": {**SPLIT, **output}}


def jsonl_texts(out: Path, split: str) -> list[str]:
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    return [
        orjson.loads(line)["text"]
        for file in manifest["formats"]["jsonl"]["files"]
        if file["split"] == split
        for line in (out / file["path"]).read_bytes().splitlines()
    ]


def expected_ids(model: Path, texts: list[str]) -> list[int]:
    sp = spm.SentencePieceProcessor(model_file=str(model))
    return [i for t in texts if t.strip() for i in [*sp.encode(t), sp.eos_id()]]


@pytest.fixture(scope="module")
def packed(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("npy") / "out"
    # shard settings do not apply: one .npy per split
    cfg = config(model, shard_records=50)
    qudata.pack_dataset(SAMPLE, out, formats=["llmbuilder", "jsonl"], config=cfg)
    return out


def test_each_split_is_the_documents_ids_then_eos_in_jsonl_order(packed: Path, model: Path) -> None:
    assert sorted(p.name for p in (packed / "llmbuilder").iterdir()) == [
        "train.npy",
        "validation.npy",
    ]
    for split in ("train", "validation"):
        array = np.load(packed / "llmbuilder" / f"{split}.npy")
        assert array.dtype == np.dtype("<i4") and array.ndim == 1
        assert array.tolist() == expected_ids(model, jsonl_texts(packed, split))


def test_the_file_is_what_np_save_writes(packed: Path, tmp_path: Path) -> None:
    path = packed / "llmbuilder" / "train.npy"
    np.save(tmp_path / "same.npy", np.load(path))
    assert path.read_bytes() == (tmp_path / "same.npy").read_bytes()


def test_manifest_counts_the_real_ids(packed: Path, model: Path) -> None:
    manifest = orjson.loads((packed / "manifest.json").read_bytes())
    fmt = manifest["formats"]["llmbuilder"]
    assert [f["path"] for f in fmt["files"]] == [
        "llmbuilder/train.npy",
        "llmbuilder/validation.npy",
    ]
    for file in fmt["files"]:
        data = (packed / file["path"]).read_bytes()
        array = np.load(packed / file["path"])
        assert file["tokens"] == len(array) and file["bytes"] == len(data)
        assert file["documents"] == file["records"] == int((array == 3).sum())
        assert file["documents"] == len([t for t in jsonl_texts(packed, file["split"]) if t])
    assert fmt["tokens"] == sum(f["tokens"] for f in fmt["files"])
    assert (fmt["tokenizer"], fmt["tokens_exact"]) == (str(model), True)


def test_llmbuilder_text_dataset_gives_the_same_windows(packed: Path) -> None:
    """LLMBuilder's own TextDataset loads each split; every window it gives (inputs and
    next-token labels) is the matching slice of the ids."""
    dataset_module = pytest.importorskip("llmbuilder.data.dataset")
    for split in ("train", "validation"):
        path = packed / "llmbuilder" / f"{split}.npy"
        ids = np.load(path)
        dataset = dataset_module.TextDataset(str(path), block_size=32, stride=24)
        assert len(dataset) == (len(ids) - 32) // 24 + 1 > 3
        for index in range(len(dataset)):
            sample = dataset[index]
            start = index * 24
            window = ids[start : start + 33]
            assert sample["input_ids"].tolist() == window[:-1].tolist()
            assert sample["labels"].tolist() == window[1:].tolist()


def test_shuffled_output_is_still_in_jsonl_order(model: Path, tmp_path: Path) -> None:
    """Shuffled records are spilled and replayed (through orjson): the ids survive."""
    out = tmp_path / "out"
    cfg = config(model, shuffle=True)
    qudata.pack_dataset(SAMPLE, out, formats=["llmbuilder", "jsonl"], config=cfg)
    for split in ("train", "validation"):
        array = np.load(out / "llmbuilder" / f"{split}.npy")
        assert array.tolist() == expected_ids(model, jsonl_texts(out, split))


def test_format_documents_gives_each_documents_ids(model: Path) -> None:
    formatter = LLMBuilderFormatter(tokenizer=str(model))
    sp = spm.SentencePieceProcessor(model_file=str(model))
    docs = [{"text": "The first document."}, {"text": " \n "}, {"text": "Second one\n\nhere."}]
    assert formatter.format_documents(docs) == [
        [*sp.encode("The first document."), 3],
        [*sp.encode("Second one\n\nhere."), 3],
    ]
    assert formatter.stats.dropped == {"empty_text": 1}


def test_a_model_without_eos_is_a_config_error(tmp_path: Path) -> None:
    path = train_model(tmp_path / "no-eos.model", eos_id=-1)
    with pytest.raises(ConfigError, match="no EOS piece"):
        LLMBuilderFormatter(tokenizer=str(path))


def test_an_unreadable_model_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match=r"pack\.llmbuilder\.tokenizer: cannot load"):
        LLMBuilderFormatter(tokenizer=str(tmp_path / "bad.model"))


def test_missing_sentencepiece_names_the_extra(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # import fails
    with pytest.raises(MissingExtraError, match=r"pip install 'qudata\[llmbuilder\]'"):
        LLMBuilderFormatter(tokenizer=str(model))
    yaml = tmp_path / "c.yaml"
    yaml.write_text(f"pack:\n  llmbuilder:\n    tokenizer: {model}\n")
    args = ["pack", str(SAMPLE), "-o", str(tmp_path / "out"), "-f", "llmbuilder", "-c", str(yaml)]
    result = CliRunner().invoke(cli, [*args, "-q", "--tokenizer", "none"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert lines[0].endswith("pip install 'qudata[llmbuilder]'")
    assert not (tmp_path / "out").exists()


def test_a_rerun_writes_the_same_bytes(packed: Path, model: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    cfg = config(model, shard_size="1KB")  # shard settings change nothing: one file a split
    qudata.pack_dataset(SAMPLE, out, formats=["llmbuilder"], config=cfg)
    for split in ("train", "validation"):
        name = f"llmbuilder/{split}.npy"
        assert (out / name).read_bytes() == (packed / name).read_bytes()


def test_the_manifest_names_the_sentencepiece_model_whatever_quality_counts(
    model: Path, tmp_path: Path
) -> None:
    cfg = config(model)
    cfg["quality"] = {"tokenizer": "cl100k_base"}  # the other formats count with tiktoken
    qudata.pack_dataset(SAMPLE, tmp_path / "out", formats=["llmbuilder", "jsonl"], config=cfg)
    formats = orjson.loads((tmp_path / "out" / "manifest.json").read_bytes())["formats"]
    assert (formats["llmbuilder"]["tokenizer"], formats["llmbuilder"]["tokens_exact"]) == (
        str(model),
        True,
    )
    assert formats["jsonl"]["tokenizer"] == "cl100k_base"
