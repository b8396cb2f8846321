"""The in-memory dedup engine, kept as the oracle of the global step's verdicts.

qudata removes duplicates with the on-disk step of :mod:`qudata.dedup` (map 1's keys,
``resolve``, map 2's verdicts). This engine is the same rule written the obvious
way, in one process, in input order: :class:`ExactDeduplicator` keeps the first
document of each normalised text, :class:`NearDeduplicator` checks exact first and
then a rensa MinHash LSH over the kept documents (the earliest kept candidate whose
estimated Jaccard reaches the threshold less one standard error wins). The tests
compare the step's verdicts with these, and ``bench/dedup_accuracy.py`` measures
both. Its memory grows with the corpus (about 180 MB per million distinct texts for
exact; 2.3 GB at 800,000 kept documents for near, as rensa's 16 band hash tables
double just below a million), which is why the product does not use it.

    >>> dedup = ExactDeduplicator()
    >>> dedup.check("a", "Hello  World").duplicate_of, dedup.check("b", "hello world").duplicate_of
    (None, 'a')
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from typing import Any, Protocol

from qudata.dedup import DedupVerdict
from qudata.dedup.files import lsh_bands
from qudata.dedup.text import exact_key, normalized_key, text_shingles
from qudata.errors import MissingExtraError

__all__ = [
    "Deduplicator",
    "ExactDeduplicator",
    "NearDeduplicator",
    "exact_keys",
    "signatures",
]


def exact_keys(texts: Sequence[str]) -> list[bytes]:
    """:func:`~qudata.dedup.text.exact_key` of each text (one call per worker batch)."""
    return [exact_key(t) for t in texts]


class Deduplicator(Protocol):
    """Called in input order; the first document of a cluster is kept."""

    def check(self, doc_id: str, text: str) -> DedupVerdict: ...

    def check_batch(self, items: Sequence[tuple[str, str]]) -> list[DedupVerdict]: ...

    def close(self) -> None: ...


class ExactDeduplicator:
    """Keeps the first document of each normalised text."""

    def __init__(self) -> None:
        self._seen: dict[bytes, str] = {}

    def close(self) -> None:
        """Nothing to release (the interface of :class:`Deduplicator`)."""

    def check(self, doc_id: str, text: str) -> DedupVerdict:
        return self.check_key(doc_id, exact_key(text))

    def check_key(self, doc_id: str, key: bytes) -> DedupVerdict:
        """:meth:`check` for a precomputed :func:`exact_key`."""
        size = len(self._seen)
        first = self._seen.setdefault(key, doc_id)
        if len(self._seen) != size:
            return DedupVerdict(None, None, key.hex())
        return DedupVerdict(first, "duplicate_exact", key.hex())

    def check_batch(self, items: Sequence[tuple[str, str]]) -> list[DedupVerdict]:
        keys = exact_keys([text for _, text in items])
        return [self.check_key(doc_id, key) for (doc_id, _), key in zip(items, keys, strict=True)]


def signatures(
    texts: Sequence[str], num_perm: int, ngram: int, seed: int
) -> list[tuple[bytes, Any]]:
    """``(exact key, MinHash)`` of each text (the shingles of :mod:`qudata.dedup.text`)."""
    import rensa

    # normalize_text, split once for both the exact key and the shingles
    words = [unicodedata.normalize("NFC", t).casefold().split() for t in texts]
    hashes = rensa.RMinHash.from_token_sets(
        [text_shingles(w, ngram) for w in words], num_perm=num_perm, seed=seed
    )
    return [(normalized_key(" ".join(w)), h) for w, h in zip(words, hashes, strict=True)]


class NearDeduplicator:
    """Exact duplicates first, then near duplicates by MinHash LSH over word n-grams.

    In one process, in input order (the global step computes the same verdicts in
    parallel, on disk).
    """

    def __init__(
        self,
        threshold: float = 0.8,
        *,
        num_perm: int = 128,
        ngram: int = 5,
        seed: int = 1,
    ) -> None:
        try:
            import rensa
        except ImportError:
            raise MissingExtraError("near", "rensa", feature="Near-duplicate detection") from None
        self.threshold, self.num_perm, self.ngram, self.seed = threshold, num_perm, ngram, seed
        # A MinHash estimate of a Jaccard J has a standard error of sqrt(J(1-J)/num_perm)
        # (0.035 at 0.8 with 128 permutations): accepting one standard error below the
        # threshold keeps the recall of pairs at the threshold near 98% instead of 50%.
        self.accept = threshold - math.sqrt(threshold * (1 - threshold) / num_perm)
        self.bands, self.rows = lsh_bands(threshold, num_perm)
        self._lsh = rensa.RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=self.bands)
        self._exact = ExactDeduplicator()
        self._near: dict[bytes, DedupVerdict] = {}  # exact key -> verdict, for near duplicates
        self._kept: list[tuple[str, bytes, Any]] = []  # LSH key -> (id, exact key, minhash)

    def close(self) -> None:
        """Nothing to release (the interface of :class:`Deduplicator`)."""

    def check(self, doc_id: str, text: str) -> DedupVerdict:
        return self.check_batch([(doc_id, text)])[0]

    def check_batch(self, items: Sequence[tuple[str, str]]) -> list[DedupVerdict]:
        """Signatures of the whole batch, then each document in order against the kept
        ones (including those kept earlier in this batch)."""
        signed = signatures([text for _, text in items], self.num_perm, self.ngram, self.seed)
        return [
            self._resolve(doc_id, key, minhash)
            for (doc_id, _), (key, minhash) in zip(items, signed, strict=True)
        ]

    def _resolve(self, doc_id: str, key: bytes, minhash: Any) -> DedupVerdict:
        exact = self._exact.check_key(doc_id, key)
        if exact.duplicate_of is not None:
            # an exact copy of a near duplicate repeats that one's kept document
            return self._near.get(key, exact)
        for index in sorted(self._lsh.query(minhash)):
            kept_id, kept_key, other = self._kept[index]
            similarity = float(minhash.jaccard(other))
            if similarity >= self.accept:
                verdict = DedupVerdict(kept_id, "duplicate_near", kept_key.hex(), similarity)
                self._near[key] = verdict
                return verdict
        self._lsh.insert(len(self._kept), minhash)
        self._kept.append((doc_id, key, minhash))
        return exact
