"""What the global dedup step did: the manifest's ``dedup`` section and its ``run`` figures.

:func:`qudata.dedup.step.resolve` fills a :class:`DedupSummary`. Its figures are of
two kinds, kept apart so that a dataset's manifest is the same whatever ran it:

* :meth:`DedupSummary.as_manifest` (``manifest["dedup"]``): the parameters and what
  was found, functions of the documents and the configuration only;
* :meth:`DedupSummary.as_run` (``manifest["run"]["dedup"]``): the spill volume, the
  key ranges and the candidate and confirmed pairs. A pair is counted in every key
  range (band) that finds it, so these follow the number of ranges, which follows the
  memory budget; the spill volume also follows the partitioning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DedupSummary"]


@dataclass
class DedupSummary:
    """What the step did, for the manifest and the report.

    ``cluster_sizes``: cluster size -> number of clusters (size 1: a document with no
    duplicate). The near parameters are None unless ``method`` is ``near``.

    Example::

        summary = resolve(directory, partitions, DedupConfig(method="near"))
        summary.as_manifest()["cluster_sizes"]  # {"1": 9, "3": 1}
    """

    documents: int = 0
    duplicates: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    cluster_sizes: dict[int, int] = field(default_factory=dict)
    spill_bytes: int = 0
    method: str = "exact"
    threshold: float | None = None
    permutations: int | None = None
    bands: int | None = None
    rows: int | None = None
    shingle_size: int | None = None
    seed: int | None = None
    memory: int = 0
    ranges: int = 0
    candidate_pairs: int = 0
    confirmed_pairs: int = 0
    workers: int = 1

    def as_manifest(self) -> dict[str, Any]:
        """The parameters and the clusters: the same for any executor and partitioning
        (JSON keys of ``cluster_sizes`` are strings, in increasing size)."""
        return {
            "method": self.method,
            "threshold": self.threshold,
            "permutations": self.permutations,
            "bands": self.bands,
            "rows": self.rows,
            "shingle_size": self.shingle_size,
            "seed": self.seed,
            "documents": self.documents,
            "duplicates": self.duplicates,
            "exact_duplicates": self.exact_duplicates,
            "near_duplicates": self.near_duplicates,
            "clusters": sum(self.cluster_sizes.values()),
            "cluster_sizes": {str(size): n for size, n in sorted(self.cluster_sizes.items())},
        }

    def as_run(self) -> dict[str, Any]:
        """The figures that depend on how the step ran (the manifest's ``run`` section)."""
        return {
            "memory": self.memory,
            "spill_bytes": self.spill_bytes,
            "ranges": self.ranges,
            "candidate_pairs": self.candidate_pairs,
            "confirmed_pairs": self.confirmed_pairs,
        }
