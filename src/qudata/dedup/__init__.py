"""Duplicate removal: the first copy of each cluster, in input order, is kept.

One global step over every partition, on disk, with memory bounded by
``dedup.memory`` (not by the corpus):

* map 1 (:mod:`qudata.stages.scan`) gives each partition's passing documents to a
  :class:`~qudata.dedup.keys.KeyWriter`: exact keys and MinHash band keys of the
  text each document is compared on (:mod:`qudata.dedup.text`), as sorted runs;
* :func:`qudata.dedup.step.resolve` decides the verdicts over all partitions
  (:mod:`~qudata.dedup.resolve`: :mod:`~qudata.dedup.exact`, :mod:`~qudata.dedup.near`,
  :mod:`~qudata.dedup.verdicts`, on :mod:`~qudata.dedup.runs` and
  :mod:`~qudata.dedup.files`) and sums them up (:mod:`~qudata.dedup.summary`);
* map 2 (:mod:`qudata.stages.write`) reads a partition's :class:`DedupVerdict` s with
  :func:`qudata.dedup.step.read_verdicts`.

This module holds only the verdict type, so that importing it costs nothing (the
step itself needs numpy).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DedupVerdict"]


@dataclass(frozen=True, slots=True)
class DedupVerdict:
    """``duplicate_of``: the id of the kept document this one repeats (``None``: keep it).

    ``reason`` is ``"duplicate_exact"`` or ``"duplicate_near"`` for a duplicate;
    ``cluster_key`` (hex) names the duplicate cluster: a kept document's own key, or the
    key of the cluster a duplicate joins.

    Example::

        DedupVerdict("doc-1", "duplicate_exact", key.hex())  # repeats doc-1
    """

    duplicate_of: str | None
    reason: str | None
    cluster_key: str
    similarity: float | None = None  # near duplicates: the estimated Jaccard similarity
