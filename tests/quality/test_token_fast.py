"""quicktok (``qudata[fast]``) against tiktoken, the reference: the same ids on the sample
corpus and an adversarial set, proven vocabularies, and byte-identical packed outputs."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.quality.tokens import CountCache, TiktokenCounter, fast, get_token_counter
from qudata.quality.tokens import encodings as token_encodings

quicktok = pytest.importorskip("quicktok")

SAMPLE = Path(__file__).parents[2] / "examples" / "sample.jsonl"
NAMES = ("cl100k_base", "o200k_base")

_RUN_CHARS = [" ", "\n", "\t", "a", "A", "1", "!", "é", "日", "😀", "\u00a0", "'", "\r\n", "ab"]
ADVERSARIAL = [
    "",
    " ",
    "hello world",
    *(c * n for c in _RUN_CHARS for n in (2, 3, 17, 4097, 5000)),  # runs, 5,000 long too
    "  \n\n \t\t \r\n\r\n   x   \n",
    "a" + " " * 100 + "b" + "\n" * 50 + "c\t\t\t d",
    "1234567890" * 40,
    "3.14159 2,718,281 0x1F 1e-10 ١٢٣ ۴۵۶ 一二三 ①②③",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7 \U0001f44d\U0001f3fd "
    "\u2764\ufe0f\u200d\U0001f525" * 5,
    "日本語のテキスト、中文文本\uff0c한국어 텍스트。" * 10,
    "नमस्ते दुनिया ‏مرحبا بالعالم‎ שלום עולם ไทย",
    "e\u0301 a\u0308\u0323 Z\u0351\u0352\u0353 \u200b\u200c\u200d \ufeff",
    "I'M HE'S we'LL they'Re 'S 'T 'RE 'VE 'M 'LL 'D",
    "<|endoftext|>",
    "a<|endoftext|>b <|fim_prefix|><|fim_middle|><|fim_suffix|> <|endofprompt|>",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n</s><s>[INST]<think>",
    "a\ud800b",
    "\udc00",
    "x\ud83d",
    "\ud83d\ude00 pair written as two code points",
    "mixed \ud800 lone " * 50,
    "\x00\x01\x1f\x7f control \x85 characters",
    "def f(x):\n    return {'a': [1, 2, 3]}  # comment\n" * 30,
    "Ünïcödé, эмодзи 🎉 and  double  spaces\n\n\tindented",
]


def sample_texts() -> list[str]:
    return [orjson.loads(line)["text"] for line in SAMPLE.read_bytes().splitlines() if line]


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    get_token_counter.cache_clear()
    fast.quicktok_encoding.cache_clear()
    yield
    get_token_counter.cache_clear()
    fast.quicktok_encoding.cache_clear()


def pair(name: str) -> tuple[TiktokenCounter, TiktokenCounter]:
    """(quicktok, tiktoken) counters of ``name``."""
    quick = TiktokenCounter(token_encodings.load_encoding(name))
    reference = TiktokenCounter(token_encodings.load_tiktoken_encoding(name))
    assert (quick.backend, reference.backend) == ("quicktok", "tiktoken")
    return quick, reference


@pytest.mark.parametrize("name", NAMES)
def test_same_ids_as_tiktoken(name: str) -> None:
    quick, reference = pair(name)
    tiktoken_encoding = token_encodings.load_tiktoken_encoding(name)
    texts = sample_texts() + ADVERSARIAL
    assert len(texts) > 300
    expected = [tiktoken_encoding.encode_ordinary(t) for t in texts]
    assert [quick.encode_ordinary(t) for t in texts] == expected
    assert [quick.count(t) for t in texts] == [len(ids) for ids in expected]
    for threads in (1, 2):
        quick.num_threads = threads
        assert [quick.ids(t) for t in quick.encode_batch(texts)] == expected
        assert quick.count_batch(texts) == [len(ids) for ids in expected]
    assert quick.vocab_size == reference.vocab_size
    assert quick.special_tokens == reference.special_tokens
    for token, token_id in reference.special_tokens.items():
        assert quick.token_id(token) == token_id == tiktoken_encoding.encode_single_token(token)
    for ids in expected[:50]:
        assert quick.decode(ids) == reference.decode(ids)


@pytest.mark.parametrize("name", NAMES)
def test_token_ends_are_the_same_and_right(name: str) -> None:
    quick, reference = pair(name)
    tiktoken_encoding = token_encodings.load_tiktoken_encoding(name)
    texts = sample_texts()[:40] + ADVERSARIAL
    for text, tokens in zip(texts, quick.encode_batch(texts), strict=True):
        ends = list(quick.token_ends(text, tokens))
        assert ends == list(reference.token_ends(text)) == list(quick.token_ends(text))
        if not _encodable(text) or len(ends) > 400:
            continue
        ids = quick.ids(tokens)
        # where each token ends: the characters its prefix completes
        prefix = itertools.accumulate(tiktoken_encoding.decode_single_token_bytes(i) for i in ids)
        assert ends == [len(p.decode("utf-8", "ignore")) for p in prefix]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_count_cache_gives_the_same_ids() -> None:
    quick, reference = pair("cl100k_base")
    texts = sample_texts()[:100] + ADVERSARIAL
    fast_cache, slow_cache = CountCache(quick), CountCache(reference)
    assert fast_cache.count_batch(texts) == slow_cache.count_batch(texts)
    for text in texts[::7]:
        assert fast_cache.encode(text) == slow_cache.encode(text)
        assert list(fast_cache.token_ends(text)) == list(slow_cache.token_ends(text))


def test_a_vocabulary_that_differs_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # no verdict cached yet
    real = quicktok.get_encoding("cl100k_base")

    class Altered:
        """quicktok's cl100k with one rank's bytes changed."""

        def __getattr__(self, attribute: str) -> Any:
            return getattr(real, attribute)

        def decode_single_token_bytes(self, rank: int) -> bytes:
            piece = real.decode_single_token_bytes(rank)
            return b"?" + piece if rank == 5000 else piece

    sha256, _, special = token_encodings.ENCODINGS["cl100k_base"]
    key = ("cl100k_base", sha256, tuple(special.items()))
    monkeypatch.setattr(quicktok, "get_encoding", lambda name: Altered())
    assert fast.quicktok_encoding(*key) is None
    assert not list(tmp_path.glob("qudata-quicktok-*"))
    monkeypatch.undo()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    fast.quicktok_encoding.cache_clear()
    assert fast.quicktok_encoding(*key) is real  # proven, and the verdict recorded
    assert len(list(tmp_path.glob("qudata-quicktok-*.verified"))) == 1
    bad = {**special, "<|endoftext|>": 1}
    assert fast.quicktok_encoding("cl100k_base", sha256, tuple(bad.items())) is None


def test_turned_off_uses_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fast.ENV, "0")
    counter: Any = get_token_counter("cl100k_base")
    assert counter.backend == "tiktoken" and counter.identity["backend"] == "tiktoken"


def test_o200k_needs_no_rank_file_with_quicktok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rank file rebuilt from quicktok's proven vocabulary is the published one."""
    monkeypatch.delenv("QUDATA_TIKTOKEN_FILE_O200K_BASE", raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    data = token_encodings.rank_file("o200k_base")
    import hashlib

    assert hashlib.sha256(data).hexdigest() == token_encodings.ENCODINGS["o200k_base"][0]


def _pack(tmp_path: Path, source: Path, name: str, formats: list[str]) -> dict[str, bytes]:
    out = tmp_path / name
    qudata.pack_dataset(source, out, formats=formats)
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("manifest.json", "README.md", "report.html")
    }


def test_outputs_are_byte_identical_with_and_without_quicktok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [orjson.loads(line) for line in SAMPLE.read_bytes().splitlines() if line]
    rows += [{"id": f"adv{n}", "text": t} for n, t in enumerate(ADVERSARIAL) if t.strip()]
    rows += [
        {
            "id": "chat",
            "messages": [
                {"role": "user", "content": "Say <|endoftext|> and 😀 " * 20},
                {"role": "assistant", "content": "日本語 " * 300},
            ],
        }
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))  # lone surrogates escaped
    formats = ["chatml", "jsonl", "megatron"]
    with_fast = _pack(tmp_path, source, "fast", formats)
    monkeypatch.setenv(fast.ENV, "0")
    get_token_counter.cache_clear()
    without = _pack(tmp_path, source, "slow", formats)
    assert with_fast.keys() == without.keys() and len(with_fast) >= 4
    for path, data in with_fast.items():
        assert data == without[path], path
