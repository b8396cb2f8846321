"""Near-duplicate removal: MinHash LSH over word n-grams (``rensa``, in Rust), exact first.

Each text is normalised as for exact dedup; its shingles are the word ``ngram``-grams
(the whole word list when the text is shorter). Candidates come from the LSH bands of
the documents already kept, and one is accepted when its estimated Jaccard similarity
reaches the threshold less one standard error of the estimate. The earliest kept
candidate wins, so the verdicts do not depend on batching or on the machine.

Memory per million kept documents (RSS, measured with ``bench/dedup_accuracy.py
--memory``): 2.3 GB at 800,000 and 3.1 GB at 1,000,000, as rensa's 16 band hash
tables double just below a million (of which one MinHash object per kept document
is about 0.65 GB, the exact-key dict about 0.18 GB).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from typing import Any

from qudata.errors import MissingExtraError
from qudata.quality.dedup import (
    DedupVerdict,
    ExactDeduplicator,
    Workers,
    normalized_key,
)

__all__ = ["NearDeduplicator", "lsh_bands", "shingles", "signatures", "word_shingles"]


def lsh_bands(threshold: float, num_perm: int, *, miss_weight: float = 0.8) -> tuple[int, int]:
    """``(bands, rows)`` with ``bands * rows == num_perm`` (rensa's constraint) minimising
    the weighted areas of false positives and false negatives around ``threshold``
    (datasketch's optimal-parameter search). Misses weigh more: a false candidate is
    caught by the Jaccard check, a miss is a duplicate left in."""

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


def shingles(normalized: str, ngram: int) -> list[str]:
    """Word ``ngram``-grams of a normalised text (the whole text when it is shorter)."""
    return word_shingles(normalized.split(" "), ngram)


def word_shingles(words: list[str], ngram: int) -> list[str]:
    """:func:`shingles` of a text already split into words."""
    if len(words) <= ngram:
        return [" ".join(words)]
    return list(map(" ".join, zip(*(words[i:] for i in range(ngram)), strict=False)))


def signatures(
    texts: Sequence[str], num_perm: int, ngram: int, seed: int
) -> list[tuple[bytes, Any]]:
    """``(exact key, MinHash)`` of each text: the heavy, independent part of near dedup,
    run in worker processes for large batches."""
    import rensa

    # normalize_text, split once for both the exact key and the shingles
    words = [unicodedata.normalize("NFC", t).casefold().split() for t in texts]
    hashes = rensa.RMinHash.from_token_sets(
        [word_shingles(w, ngram) for w in words], num_perm=num_perm, seed=seed
    )
    return [(normalized_key(" ".join(w)), h) for w, h in zip(words, hashes, strict=True)]


class NearDeduplicator:
    """Exact duplicates first, then near duplicates by MinHash LSH over word n-grams.

    Signatures of large batches are computed by ``workers`` processes (default: up to
    two); matching against kept documents stays in input order in this process.
    """

    def __init__(
        self,
        threshold: float = 0.8,
        *,
        num_perm: int = 128,
        ngram: int = 5,
        seed: int = 1,
        workers: int | None = None,
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
        self._workers = Workers(workers)

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        self._workers.close()

    def check(self, doc_id: str, text: str) -> DedupVerdict:
        return self.check_batch([(doc_id, text)])[0]

    def check_batch(self, items: Sequence[tuple[str, str]]) -> list[DedupVerdict]:
        """Signatures of the whole batch, then each document in order against the kept
        ones (including those kept earlier in this batch)."""
        signed = self._workers.map(
            signatures, [text for _, text in items], self.num_perm, self.ngram, self.seed
        )
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
