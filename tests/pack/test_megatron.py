"""-f megatron: MMIDIDX .bin/.idx pairs that megatron-core's IndexedDataset reads back."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.errors import ConfigError
from qudata.pack.megatron import INDEX_HEADER, MegatronWriter, TokenEncoder, token_dtype
from qudata.quality.tokens import get_token_counter

CL100K = get_token_counter("cl100k_base")
EOT = 100257  # <|endoftext|> of cl100k_base


def indexed_dataset(prefix: Path) -> Any:
    """megatron-core's own reader (it warns at import about optional CUDA kernels)."""
    pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    return indexed.IndexedDataset(str(prefix))


def write(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


ROWS = [
    {"id": f"d{n}", "text": f"Document {n}: " + "plain words here. " * (n + 1)} for n in range(8)
]


def test_megatron_core_reads_every_document_in_jsonl_order(tmp_path: Path) -> None:
    rows = [*ROWS, {"id": "empty", "text": "   "}]
    out = tmp_path / "out"
    report = qudata.pack_dataset(write(tmp_path, rows), out, formats=["megatron", "jsonl"])
    assert report.balanced()
    assert report.formats["megatron"].dropped == {"empty_text": 1}
    dataset = indexed_dataset(out / "megatron" / "train-00000-of-00001")
    texts = [
        orjson.loads(line)["text"]
        for line in (out / "jsonl" / "train-00000-of-00001.jsonl").read_bytes().splitlines()
        if orjson.loads(line)["text"].strip()
    ]
    assert len(dataset) == len(texts) == 8
    for number, text in enumerate(texts):
        assert list(dataset[number]) == [*CL100K.encode_batch([text])[0], EOT]
    assert dataset.sequence_lengths.dtype.name == "int32"
    assert list(dataset.document_indices) == list(range(9))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    files = manifest["formats"]["megatron"]["files"]
    assert [f["path"] for f in files] == [
        "megatron/train-00000-of-00001.bin",
        "megatron/train-00000-of-00001.idx",
    ]
    assert manifest["formats"]["megatron"]["tokens"] == int(dataset.sequence_lengths.sum())
    assert (out / "megatron" / "train-00000-of-00001.idx").read_bytes().startswith(INDEX_HEADER)


def test_shards_and_splits_each_have_their_pair(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = {"output": {"shard_size": "200B", "split": {"train": 0.5, "validation": 0.5}}}
    report = qudata.pack_dataset(write(tmp_path, ROWS), out, config=config, formats=["megatron"])
    assert report.balanced()
    files = report.formats["megatron"].files
    bins = [f for f in files if f.path.endswith(".bin")]
    assert len(bins) > 2 and len(files) == 2 * len(bins)
    assert {f.split for f in files} == {"train", "validation"}
    seen = 0
    for stats in bins:
        dataset = indexed_dataset(out / stats.path.removesuffix(".bin"))
        assert len(dataset) == stats.documents
        assert all(int(dataset[i][-1]) == EOT for i in range(len(dataset)))
        seen += len(dataset)
    assert seen == len(ROWS)


def test_conversations_are_their_text_or_rendered(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Yo."}]}
    ]
    source = write(tmp_path, rows)
    qudata.pack_dataset(source, tmp_path / "a", formats=["megatron"])
    config = {"pack": {"megatron": {"text": "render"}}}
    qudata.pack_dataset(source, tmp_path / "b", config=config, formats=["megatron"])
    plain = indexed_dataset(tmp_path / "a" / "megatron" / "train-00000-of-00001")
    rendered = indexed_dataset(tmp_path / "b" / "megatron" / "train-00000-of-00001")
    encoding = CL100K._encoding  # type: ignore[attr-defined]
    assert "<|im_start|>" not in encoding.decode(list(plain[0]))
    assert encoding.decode(list(rendered[0])) == (
        "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\nYo.<|im_end|>\n<|endoftext|>"
    )


def test_a_small_vocabulary_is_uint16_with_its_own_eod(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["[UNK]", "</s>"])
    tokenizer.train_from_iterator([r["text"] for r in ROWS], trainer)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    out = tmp_path / "out"
    config = {"quality": {"tokenizer": str(path)}}
    qudata.pack_dataset(write(tmp_path, ROWS[:3]), out, config=config, formats=["megatron"])
    dataset = indexed_dataset(out / "megatron" / "train-00000-of-00001")
    eod = tokenizer.token_to_id("</s>")
    assert dataset[0].dtype.name == "uint16" and token_dtype(200).name == "uint16"
    for number, row in enumerate(ROWS[:3]):
        ids = tokenizer.encode(row["text"], add_special_tokens=False).ids
        assert list(dataset[number]) == [*ids, eod]


def test_megatron_needs_an_exact_tokenizer(tmp_path: Path) -> None:
    config = {"quality": {"tokenizer": "estimate"}}
    with pytest.raises(ConfigError, match="token ids"):
        qudata.pack_dataset(write(tmp_path, ROWS), tmp_path / "o", config=config,
                            formats=["megatron"])  # fmt: skip
    assert not (tmp_path / "o").exists()


def test_the_same_input_gives_the_same_bytes(tmp_path: Path) -> None:
    source = write(tmp_path, ROWS)
    for name in ("a", "b"):
        qudata.pack_dataset(source, tmp_path / name, formats=["megatron"])
    for ext in (".bin", ".idx"):
        first = (tmp_path / "a" / "megatron" / f"train-00000-of-00001{ext}").read_bytes()
        assert first == (tmp_path / "b" / "megatron" / f"train-00000-of-00001{ext}").read_bytes()


def test_parts_hold_bin_bytes_and_read_back_as_the_json_path(tmp_path: Path) -> None:
    """Map 2's parts hold the ``.bin`` bytes (no JSON lists of ids); with the shuffle
    the records go through JSON: the same sequences either way."""
    source = write(tmp_path, ROWS)
    seqs = {}
    for name, shuffle in (("bytes", False), ("json", True)):
        config = {"output": {"shuffle": shuffle}}
        qudata.pack_dataset(source, tmp_path / name, config=config, formats=["megatron"])
        dataset = indexed_dataset(tmp_path / name / "megatron" / "train-00000-of-00001")
        seqs[name] = [list(dataset[i]) for i in range(len(dataset))]
    want = [[*CL100K.encode_batch([r["text"]])[0], EOT] for r in ROWS]
    assert seqs["bytes"] == want
    assert sorted(seqs["json"]) == sorted(want)


def test_writer_takes_encoded_sequences_as_its_own(tmp_path: Path) -> None:
    dtype = token_dtype(CL100K.vocab_size)
    records = [[1, 2, 3, EOT], [7, EOT]]
    written = {}
    for how in ("document", "encoded"):
        writer = MegatronWriter(tmp_path / how, "train", relative_to=tmp_path, dtype=dtype)
        (tmp_path / how).mkdir()
        if how == "document":
            writer.write_document(records, tokens=6)
        else:
            data = b"".join(TokenEncoder(dtype).encode(r) for r in records)
            writer.write_encoded(data, tokens=[4, 2])
            with pytest.raises(ValueError, match="not sequences of 5 ids"):
                writer.write_encoded(data, tokens=[4, 1])
        files = writer.close()
        assert [(f.documents, f.records) for f in files] == [(1, 2), (1, 2)]
        written[how] = [(tmp_path / f.path).read_bytes() for f in files]
    assert written["document"] == written["encoded"]
