"""The files of the global dedup step and the parameters every stage of it derives.

Per partition ``p`` (written by :class:`qudata.dedup.keys.KeyWriter`):

* ``p.pos`` positions (int64), ``p.keys`` exact keys (16 bytes), ``p.ids`` / ``p.off``
  document ids (UTF-8 blob, uint64 end offsets), ``p.sig`` MinHash signatures
  (``num_perm`` x uint32 per document, near only), ``p.meta.json`` (written last);
* ``p-x*.run`` exact records ``(key, lo, ref)``, ``p-b*.run`` band records
  ``(key, ref)``: sorted runs (:mod:`qudata.dedup.runs`).

``resolve`` adds range outputs, removes what it consumed, and leaves ``p.verdicts``
beside ``p.pos`` and ``p.keys`` for ``read_verdicts``. A document's reference
(``ref``) is its partition in the high 32 bits and its index in the partition below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qudata.config import DedupConfig, parse_size

__all__ = [
    "BAND",
    "DUP",
    "EDGE",
    "EXACT",
    "EXACT_KIND",
    "NEAR_KIND",
    "SEED",
    "DedupParams",
    "lsh_bands",
    "partition_file",
]

#: ``(key = high 64 bits of the exact key, lo = low 64 bits, ref)``
EXACT = np.dtype([("key", "<u8"), ("lo", "<u8"), ("ref", "<u8")])
#: ``(key = band << 54 | 54 bits of the band's hash, ref)``
BAND = np.dtype([("key", "<u8"), ("ref", "<u8")])
#: a confirmed near pair: ``(key = ref of the later document, a = ref of the earlier, sim)``
EDGE = np.dtype([("key", "<u8"), ("a", "<u8"), ("sim", "<f8")])
#: a duplicate: ``(key = its ref, kept = ref of the document it names, sim, kind)``
DUP = np.dtype([("key", "<u8"), ("kept", "<u8"), ("sim", "<f8"), ("kind", "u1")])
EXACT_KIND, NEAR_KIND = 1, 2

#: The MinHash seed, recorded in the manifest.
SEED = 1
#: Bits of a band key left to the band's hash (the band number takes the rest).
BAND_HASH_BITS = 54


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


def partition_file(directory: Path, partition: int, suffix: str) -> Path:
    return directory / f"{partition:06d}{suffix}"


@dataclass(frozen=True)
class DedupParams:
    """What the configuration implies, computed once and passed to every stage."""

    method: str
    threshold: float
    num_perm: int
    ngram: int
    bands: int
    rows: int
    accept: float
    memory: int
    seed: int = SEED

    @classmethod
    def of(cls, dedup: DedupConfig, memory: int | str | None = None) -> DedupParams:
        bands, rows = lsh_bands(dedup.threshold, dedup.num_perm)
        t = dedup.threshold
        return cls(
            method=dedup.method,
            threshold=t,
            num_perm=dedup.num_perm,
            ngram=dedup.ngram,
            bands=bands,
            rows=rows,
            # A MinHash estimate of a Jaccard J has a standard error of sqrt(J(1-J)/num_perm)
            # (0.035 at 0.8 with 128 permutations): accepting one standard error below the
            # threshold keeps the recall of pairs at the threshold near 98% instead of 50%.
            accept=t - math.sqrt(t * (1 - t) / dedup.num_perm),
            memory=parse_size(dedup.memory if memory is None else memory),
        )

    @property
    def near(self) -> bool:
        return self.method == "near"

    @property
    def run_bytes(self) -> int:
        """A KeyWriter's buffered records before it writes a run (several map
        workers write at once, so each gets a slice of the budget)."""
        return max(2**12, self.memory // 8)

    @property
    def range_bytes(self) -> int:
        """The working memory of one key range of ``resolve``."""
        return max(2**12, self.memory // 4)

    @property
    def pair_chunk(self) -> int:
        """Candidate pairs verified at once: each reads two signatures, which may
        touch a page of the signature file each."""
        return max(64, self.range_bytes // (2 * (4096 + 4 * self.num_perm)))
