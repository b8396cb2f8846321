"""Near dedup over sorted band runs: candidate pairs per bucket, verified, then one rule.

* :func:`bucket_range` (pure, per key range, parallel): the band records of the
  range, less the exact duplicates; each bucket (documents sharing a band key, in
  input order) pairs every member with each earlier one (with the first ``WINDOW``
  only in a larger bucket, so boilerplate cannot make the work quadratic); each pair
  is verified by the estimated Jaccard of the two signatures, read back by offset,
  against the acceptance of :class:`~qudata.dedup.files.DedupParams` (the threshold
  less one standard error).
* :func:`first_kept` (one pass over the confirmed pairs in input order) applies the
  rule. **A document is a near duplicate when it is similar to an earlier document
  that is kept; it names the earliest such one.** So in a chain A ~ B ~ C where A is
  not similar to C, B names A and C is kept (C's only similar earlier document, B, is
  not kept). This is the rule of a streaming MinHash LSH that keeps first copies
  (the in-memory oracle of the tests, whose verdicts these equal); every
  removal's similarity to the document it names passes the threshold (no drift
  along a chain); and the pass holds one bit per document, nothing else.

Pairs of different buckets are independent; :func:`first_kept` could run per
connected component of the confirmed pairs, which is how a cluster would split it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qudata.dedup.files import BAND, DUP, EDGE, NEAR_KIND, DedupParams, partition_file
from qudata.dedup.runs import read_range, write_run
from qudata.io.on_demand import need

__all__ = ["WINDOW", "Documents", "bucket_range", "first_kept"]

#: In a bucket of more than WINDOW documents, each is compared with the first WINDOW.
WINDOW = 64
_LOW = np.uint64(2**32 - 1)


class Documents:
    """Global document numbers from references, and bit sets over them."""

    def __init__(self, counts: Sequence[int]) -> None:
        self.starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        self.total = int(self.starts[-1])

    def number(self, refs: np.ndarray) -> np.ndarray:
        parts = (refs >> np.uint64(32)).astype(np.int64)
        return self.starts[parts] + (refs & _LOW).astype(np.int64)

    def bits(self) -> np.ndarray:
        return np.zeros((self.total + 7) // 8, dtype=np.uint8)

    @staticmethod
    def test(bits: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        found: np.ndarray = (bits[numbers >> 3] >> (numbers & 7).astype(np.uint8)) & 1
        return found.astype(bool)

    @staticmethod
    def set(bits: np.ndarray, numbers: np.ndarray) -> None:
        np.bitwise_or.at(bits, numbers >> 3, (1 << (numbers & 7)).astype(np.uint8))


def _pairs(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (earlier, later) of the pairs within each bucket of sorted records."""
    n = len(records)
    head = np.ones(n, dtype=bool)
    head[1:] = records["key"][1:] != records["key"][:-1]
    start = np.maximum.accumulate(np.where(head, np.arange(n), 0))
    rank = np.arange(n) - start
    later, earlier = [], []
    members = np.flatnonzero(rank > 0)
    for i in range(WINDOW):
        members = members[rank[members] > i]
        if not len(members):
            break
        later.append(members)
        earlier.append(start[members] + i)
    if not later:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(earlier), np.concatenate(later)


def _signatures(directory: Path, refs: np.ndarray, num_perm: int) -> np.ndarray:
    """The signatures of ``refs``, read from each partition's signature file (mapped
    for this call only, so the pages read do not stay in this process)."""
    out = np.empty((len(refs), num_perm), dtype=np.uint32)
    parts = (refs >> np.uint64(32)).astype(np.int64)
    for part in np.unique(parts):
        chosen = parts == part
        path = need(partition_file(directory, int(part), ".sig"))
        mapped = np.memmap(path, dtype=np.uint32, mode="r").reshape(-1, num_perm)
        out[chosen] = mapped[(refs[chosen] & _LOW).astype(np.int64)]
        del mapped
    return out


def bucket_range(
    directory: Path,
    runs: Sequence[Path],
    lo: int,
    hi: int | None,
    counts: Sequence[int],
    exact_bits: Path,
    params: DedupParams,
    out: Path,
) -> tuple[int, int]:
    """Confirmed pairs of the buckets in ``[lo, hi)`` written to ``out`` (sorted by the
    later document); returns (candidate pairs, confirmed pairs)."""
    docs = Documents(counts)
    records = read_range(runs, BAND, lo, hi)
    bits = np.fromfile(exact_bits, dtype=np.uint8)
    records = records[~docs.test(bits, docs.number(records["ref"]))]
    del bits
    records = records[np.argsort(records["key"])]
    # only buckets of two documents or more matter: those sorted in input order
    shared = np.zeros(len(records), dtype=bool)
    same = records["key"][1:] == records["key"][:-1]
    shared[1:] |= same
    shared[:-1] |= same
    records = records[shared]
    records = records[np.lexsort((records["ref"], records["key"]))]
    earlier, later = _pairs(records)
    pairs = np.unique(np.stack([records["ref"][earlier], records["ref"][later]], axis=1), axis=0)
    del records, earlier, later
    edges = []
    for start in range(0, len(pairs), params.pair_chunk):
        chunk = pairs[start : start + params.pair_chunk]
        a = _signatures(directory, chunk[:, 0], params.num_perm)
        b = _signatures(directory, chunk[:, 1], params.num_perm)
        sim = (a == b).sum(axis=1) / params.num_perm
        ok = sim >= params.accept
        confirmed = np.empty(int(ok.sum()), EDGE)
        confirmed["key"], confirmed["a"], confirmed["sim"] = chunk[ok, 1], chunk[ok, 0], sim[ok]
        edges.append(confirmed)
    result = np.concatenate(edges) if edges else np.empty(0, EDGE)
    write_run(out, result, order=("a",))
    return len(pairs), len(result)


def first_kept(runs: Sequence[Path], counts: Sequence[int], near_run: Path, near_bits: Path) -> int:
    """The rule over every confirmed pair, partition by partition in input order:
    the near duplicates to ``near_run`` (sorted), their bits to ``near_bits``.

    Sequential, one call (a task) for the whole corpus: whether a document is kept
    depends on the verdicts of the earlier documents it is similar to, which may be in
    any earlier partition. It holds one bit per document and one partition's pairs."""
    docs = Documents(counts)
    removed = bytearray(docs.bits().tobytes())
    total = 0
    with open(near_run, "wb") as out:
        for part in range(len(counts)):
            lo = part << 32
            edges = read_range(runs, EDGE, lo, lo + 2**32)
            edges = edges[np.lexsort((edges["a"], edges["key"]))]
            later = docs.number(edges["key"]).tolist()
            earlier = docs.number(edges["a"]).tolist()
            chosen, last = [], -1
            for i, (b, a) in enumerate(zip(later, earlier, strict=True)):
                if b == last:
                    continue  # decided by an earlier pair of the same document
                if not removed[a >> 3] >> (a & 7) & 1:
                    removed[b >> 3] |= 1 << (b & 7)
                    chosen.append(i)
                    last = b
            picked = edges[np.asarray(chosen, dtype=np.int64)]
            dups = np.empty(len(picked), DUP)
            dups["key"], dups["kept"], dups["sim"] = picked["key"], picked["a"], picked["sim"]
            dups["kind"] = NEAR_KIND
            dups.tofile(out)
            total += len(dups)
    near_bits.write_bytes(bytes(removed))
    return total
