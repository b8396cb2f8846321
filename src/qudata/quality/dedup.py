"""Duplicate removal, first copy kept: exact (normalised text) and near (MinHash LSH).

Exact: the text is normalised (Unicode NFC, case folded, whitespace runs to one
space) and hashed with xxh3-128. Near: MinHash over word n-gram shingles with
``rensa`` (Rust), candidates from LSH bands, confirmed by the estimated Jaccard
similarity against documents already kept. Documents are seen in input order,
so the copy kept is always the first one. Every verdict carries the
document's duplicate-cluster key, which later stages use to keep a cluster in
one split.

Memory per million documents: see ``bench/dedup_memory.py`` and the README.

    >>> dedup = ExactDeduplicator()
    >>> dedup.check("a", "Hello  World").duplicate_of, dedup.check("b", "hello world").duplicate_of
    (None, 'a')
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import xxhash

from qudata.errors import ConfigError, MissingExtraError

__all__ = [
    "DedupVerdict",
    "Deduplicator",
    "ExactDeduplicator",
    "NearDeduplicator",
    "exact_key",
    "lsh_bands",
    "make_deduplicator",
    "normalize_text",
]


def normalize_text(text: str) -> str:
    """NFC, case folded, whitespace runs collapsed to one space, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def exact_key(text: str) -> bytes:
    """The 128-bit xxh3 hash of the normalised text."""
    return _key(normalize_text(text))


def _key(normalized: str) -> bytes:
    return xxhash.xxh3_128_digest(normalized.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class DedupVerdict:
    """``duplicate_of`` is the id of the kept document this one repeats (``None``: keep)."""

    duplicate_of: str | None
    reason: str | None
    cluster_key: str


class Deduplicator(Protocol):
    def check(self, doc_id: str, text: str) -> DedupVerdict: ...

    def check_batch(self, items: Sequence[tuple[str, str]]) -> list[DedupVerdict]: ...


class ExactDeduplicator:
    """Keeps the first document of each normalised text."""

    def __init__(self) -> None:
        self._seen: dict[bytes, str] = {}

    def check(self, doc_id: str, text: str) -> DedupVerdict:
        return self.check_normalized(doc_id, normalize_text(text))

    def check_normalized(self, doc_id: str, normalized: str) -> DedupVerdict:
        """:meth:`check` for a text already passed through :func:`normalize_text`."""
        key = _key(normalized)
        first = self._seen.setdefault(key, doc_id)
        if first is doc_id:
            return DedupVerdict(None, None, key.hex())
        return DedupVerdict(first, "duplicate_exact", key.hex())

    def check_batch(self, items: Sequence[tuple[str, str]]) -> list[DedupVerdict]:
        return [self.check(doc_id, text) for doc_id, text in items]


def lsh_bands(threshold: float, num_perm: int, *, miss_weight: float = 0.8) -> tuple[int, int]:
    """``(bands, rows)`` with ``bands * rows == num_perm`` minimising the weighted areas of
    false positives and false negatives around ``threshold`` (datasketch's optimal-parameter
    search). Misses weigh more: a false candidate is caught by the Jaccard check, a miss is
    a duplicate left in."""

    def area(b: int, r: int, lo: float, hi: float, keep: bool) -> float:
        steps, total = 200, 0.0
        for i in range(steps):
            s = lo + (hi - lo) * (i + 0.5) / steps
            p = 1 - (1 - s**r) ** b
            total += (1 - p if keep else p) * (hi - lo) / steps
        return total

    best, best_error = (1, num_perm), math.inf
    for b in (b for b in range(1, num_perm + 1) if num_perm % b == 0):
        r = num_perm // b
        error = (1 - miss_weight) * area(b, r, 0.0, threshold, False) + miss_weight * area(
            b, r, threshold, 1.0, True
        )
        if error < best_error:
            best, best_error = (b, r), error
    return best


class NearDeduplicator:
    """Exact duplicates first, then near duplicates by MinHash LSH over word n-grams."""

    def __init__(
        self, threshold: float = 0.8, *, num_perm: int = 128, ngram: int = 5, seed: int = 1
    ) -> None:
        try:
            import rensa
        except ImportError:
            raise MissingExtraError("near", "rensa", feature="Near-duplicate detection") from None
        self._rensa = rensa
        self.threshold, self.num_perm, self.ngram, self.seed = threshold, num_perm, ngram, seed
        bands, _rows = lsh_bands(threshold, num_perm)
        self._lsh = rensa.RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=bands)
        self._exact = ExactDeduplicator()
        self._kept: list[tuple[str, str, Any]] = []  # (id, cluster key, minhash) by LSH key

    def _shingles(self, normalized: str) -> list[str]:
        words = normalized.split(" ")
        n = self.ngram
        if len(words) <= n:
            return [" ".join(words)]
        return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]

    def check(self, doc_id: str, text: str) -> DedupVerdict:
        return self.check_batch([(doc_id, text)])[0]

    def check_batch(self, items: Sequence[tuple[str, str]]) -> list[DedupVerdict]:
        normalized = [normalize_text(text) for _, text in items]  # once, for both steps
        exact = [
            self._exact.check_normalized(doc_id, norm)
            for (doc_id, _), norm in zip(items, normalized, strict=True)
        ]
        fresh = [i for i, v in enumerate(exact) if v.duplicate_of is None]
        hashes = self._rensa.RMinHash.from_token_sets(
            [self._shingles(normalized[i]) for i in fresh], num_perm=self.num_perm, seed=self.seed
        )
        verdicts = list(exact)
        for i, minhash in zip(fresh, hashes, strict=True):
            match = None
            for key in sorted(self._lsh.query(minhash)):
                kept_id, cluster, other = self._kept[key]
                if minhash.jaccard(other) >= self.threshold:
                    match = (kept_id, cluster)
                    break
            if match is not None:
                verdicts[i] = DedupVerdict(match[0], "duplicate_near", match[1])
            else:
                self._lsh.insert(len(self._kept), minhash)
                self._kept.append((items[i][0], exact[i].cluster_key, minhash))
        return verdicts


def make_deduplicator(
    method: str, *, threshold: float = 0.8, num_perm: int = 128, ngram: int = 5
) -> Deduplicator | None:
    """``none`` (``None``), ``exact`` or ``near``."""
    if not 0 < threshold <= 1:
        raise ConfigError(f"dedup threshold must be in (0, 1], got {threshold}")
    if method == "none":
        return None
    if method == "exact":
        return ExactDeduplicator()
    if method == "near":
        return NearDeduplicator(threshold, num_perm=num_perm, ngram=ngram)
    raise ConfigError(f"unknown dedup method {method!r} (choose from: none, exact, near)")
