"""Seeded, stable split assignment by duplicate cluster.

A document's split is a seeded hash of its duplicate-cluster key (the
normalised-text hash, or its near-duplicate cluster under ``dedup: near``), so
the split of a document never changes when others are added, exact duplicates
never cross splits, and under ``near`` neither do near duplicates.

    >>> splitter = SplitAssigner({"train": 0.9, "test": 0.1}, seed=0)
    >>> splitter.assign("5f1e...") in ("train", "test")
    True
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

import xxhash

__all__ = ["SplitAssigner", "parse_split"]


def parse_split(text: str) -> dict[str, float]:
    """``"train=0.98,validation=0.01,test=0.01"`` to a mapping (validated by the config)."""
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"split {item!r}: expected name=fraction")
        out[name.strip()] = float(value)
    return out


class SplitAssigner:
    """Maps a cluster key to a split name, in proportion to the fractions."""

    def __init__(self, fractions: Mapping[str, float], *, seed: int = 0) -> None:
        self.names = list(fractions)
        total = sum(fractions.values())
        bounds, acc = [], 0.0
        for name in self.names:
            acc += fractions[name] / total
            bounds.append(acc)
        bounds[-1] = 1.0
        self._bounds = bounds
        self._seed = seed
        self.single = len(self.names) == 1

    def assign(self, cluster_key: str) -> str:
        if self.single:
            return self.names[0]
        point = xxhash.xxh3_64_intdigest(cluster_key.encode(), seed=self._seed) / 2.0**64
        # a hash near 2**64 rounds to 1.0 in floating point: clamp to the last split
        return self.names[min(bisect.bisect_right(self._bounds, point), len(self.names) - 1)]
