"""Mixing by token share: plan how often each document of each source is written.

Weights are shares of output tokens, counted after every filter and deduplication
(a document's tokens: its text, or its messages' contents). A first pass observes each
kept document's tokens under a seeded hash of its id, in :data:`BUCKETS` buckets per
source (constant memory); the plan then gives every document a number of copies:

- a source with more tokens than its share keeps the documents whose hash falls under
  a threshold (a seeded sample, the same for any engine or worker count); the rest are
  dropped as ``mix_downsampled``;
- a source with fewer is written whole ``epochs`` times, then a seeded sample of its
  documents once more (``repeated``);
- ``target_tokens`` absent: every token of the scarcest source is kept once, and the
  others shrink to their weights.

The threshold is chosen bucket by bucket, so the share achieved is within a bucket's
worth of tokens (1/4096 of the source) of the one asked, as whole documents allow.

    >>> planner = MixPlanner([0.5, 0.5], seed=0)
    >>> for n in range(100):
    ...     planner.observe(0, f"a{n}", 10)
    ...     planner.observe(1, f"b{n}", 30)
    >>> plan = planner.plan()
    >>> sum(plan.copies(1, f"b{n}") for n in range(100)) * 30 < 1100
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import xxhash

__all__ = ["BUCKETS", "MixPlan", "MixPlanner", "SourcePlan"]

BUCKETS = 4096


def _bucket(seed: int, doc_id: str) -> int:
    return xxhash.xxh3_64_intdigest(doc_id.encode("utf-8", "surrogatepass"), seed) % BUCKETS


@dataclass(slots=True)
class SourcePlan:
    """One source's plan and, once written, what it achieved."""

    weight: float
    available_tokens: int = 0
    available_documents: int = 0
    target_tokens: int = 0
    epochs: int = 1  # whole copies of every document
    threshold: int = BUCKETS  # documents in buckets below it get one copy more (or stay)
    extra: bool = False  # the threshold adds a copy (repeats) rather than keeps (sample)
    written_tokens: int = 0
    written_documents: int = 0
    repeated: int = 0
    downsampled: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def as_dict(self, path: str, total: int) -> dict[str, Any]:
        return {
            "path": path,
            "weight": self.weight,
            "available_tokens": self.available_tokens,
            "available_documents": self.available_documents,
            "target_tokens": self.target_tokens,
            "tokens": self.written_tokens,
            "documents": self.written_documents,
            "share": round(self.written_tokens / total, 6) if total else 0.0,
            "epochs": self.epochs,  # whole copies (of the sample, when down-sampled)
            "repeated": self.repeated,
            "downsampled": self.downsampled,
        }


class MixPlan:
    """How many copies of each document to write (0: down-sampled)."""

    def __init__(self, sources: list[SourcePlan], seed: int) -> None:
        self.sources, self.seed = sources, seed

    def copies(self, source: int, doc_id: str) -> int:
        plan = self.sources[source]
        below = _bucket(self.seed, doc_id) < plan.threshold
        if plan.extra:
            return plan.epochs + (1 if below else 0)
        return plan.epochs if below else 0

    def record(self, source: int, tokens: int, copies: int) -> None:
        """Account one document of ``source`` written ``copies`` times."""
        plan = self.sources[source]
        if copies == 0:
            plan.downsampled += 1
            return
        plan.written_documents += 1
        plan.written_tokens += tokens * copies
        plan.repeated += copies - 1

    def as_manifest(self, paths: list[str], target_tokens: int | None) -> dict[str, Any]:
        total = sum(p.written_tokens for p in self.sources)
        return {
            "seed": self.seed,
            "target_tokens": target_tokens,
            "tokens": total,
            "sources": [
                p.as_dict(path, total) for p, path in zip(self.sources, paths, strict=True)
            ],
        }


class MixPlanner:
    """Observes the kept documents of the first pass; :meth:`plan` makes the plan."""

    def __init__(self, weights: list[float], *, seed: int, target_tokens: int | None = None):
        total = sum(weights)
        self.sources = [SourcePlan(weight=w / total) for w in weights]
        self.seed, self.target_tokens = seed, target_tokens

    def observe(self, source: int, doc_id: str, tokens: int) -> None:
        plan = self.sources[source]
        plan.buckets[_bucket(self.seed, doc_id)] += tokens
        plan.available_tokens += tokens
        plan.available_documents += 1

    def plan(self) -> MixPlan:
        sources = self.sources
        if self.target_tokens is not None:
            total = self.target_tokens
        else:  # the scarcest source, kept whole, sets the size
            usable = [p.available_tokens / p.weight for p in sources if p.available_tokens]
            total = int(min(usable)) if usable else 0
        for plan in sources:
            plan.target_tokens = round(plan.weight * total)
            _fit(plan)
        return MixPlan(sources, self.seed)


def _fit(plan: SourcePlan) -> None:
    """Epochs and the bucket threshold whose tokens come closest to the target."""
    if plan.available_tokens == 0:
        plan.epochs, plan.threshold = 0, 0
        return
    plan.epochs, rest = divmod(plan.target_tokens, plan.available_tokens)
    plan.extra = plan.epochs >= 1  # a sample on top of whole epochs
    if not plan.extra:  # down-sampling: keep the buckets under the threshold once
        plan.epochs = 1
    best, running = (rest, 0), 0
    for bucket, tokens in enumerate(plan.buckets, 1):
        running += tokens
        miss = abs(rest - running)
        if miss < best[0]:
            best = (miss, bucket)
    plan.threshold = best[1]
