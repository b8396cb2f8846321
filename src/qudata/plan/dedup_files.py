"""The files of the global dedup step and the parameters every stage of it derives.

Per partition ``p`` (written by :class:`qudata.plan.dedup_keys.KeyWriter`):

* ``p.pos`` positions (int64), ``p.keys`` exact keys (16 bytes), ``p.ids`` / ``p.off``
  document ids (UTF-8 blob, uint64 end offsets), ``p.sig`` MinHash signatures
  (``num_perm`` x uint32 per document, near only), ``p.meta.json`` (written last);
* ``p-x*.run`` exact records ``(key, lo, ref)``, ``p-b*.run`` band records
  ``(key, ref)``: sorted runs (:mod:`qudata.plan.runs`).

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
from qudata.quality.near_dedup import lsh_bands

__all__ = [
    "BAND",
    "DUP",
    "EDGE",
    "EXACT",
    "EXACT_KIND",
    "NEAR_KIND",
    "SEED",
    "DedupParams",
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

#: The MinHash seed (as NearDeduplicator's default), recorded in the manifest.
SEED = 1
#: Bits of a band key left to the band's hash (the band number takes the rest).
BAND_HASH_BITS = 54


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
            # as NearDeduplicator: one standard error of the estimate below the threshold
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
