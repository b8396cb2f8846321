"""Token counts in fixed buckets: constant memory, mergeable across workers."""

from __future__ import annotations

import math
from bisect import bisect_right

__all__ = ["EDGES", "TokenHistogram"]

EDGES = list(range(65))  # bucket i holds [EDGES[i], EDGES[i + 1]); the last one is open
while EDGES[-1] < 2**40:
    EDGES.append(max(EDGES[-1] + 1, -(-EDGES[-1] * 105 // 100)))  # ceil(x * 1.05)


class TokenHistogram:
    """Token counts in fixed buckets (0..63 exact, then 5% wide): constant memory, mergeable.

    >>> h = TokenHistogram()
    >>> for n in (10, 20, 1000):
    ...     h.add(n)
    >>> h.summary()
    {'min': 10, 'p50': 20, 'p90': 1000, 'p99': 1000, 'max': 1000}
    """

    def __init__(self) -> None:
        self.counts = [0] * len(EDGES)
        self.count = self.total = self.min = self.max = 0

    def add(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"a token count cannot be negative: {n}")
        self.counts[bisect_right(EDGES, n) - 1] += 1
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
        return [edge - 1 for edge in EDGES[1:]] + [self.max]

    def buckets(self) -> list[tuple[int, int, int]]:
        """The non-empty buckets as ``(low, high, count)``, ``high`` included."""
        triples = zip(EDGES, self._highs(), self.counts, strict=True)
        return [(low, high, c) for low, high, c in triples if c]

    def summary(self) -> dict[str, int]:
        """``min``, ``p50``, ``p90``, ``p99`` and ``max`` (all 0 when empty)."""
        ps = {f"p{p}": self.percentile(p) for p in (50, 90, 99)}
        return {"min": self.min, **ps, "max": self.max}
