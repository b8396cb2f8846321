"""The verdicts of one partition: assembled by ``resolve``, read by map 2.

:func:`assemble` (pure, per partition, parallel) gathers the partition's duplicates
from the exact and near outputs (an exact copy of a near duplicate takes that one's
verdict), looks up the id and key of each kept document
named, and writes ``p.verdicts.npz``; it also writes the references named as a run,
for the cluster sizes. :class:`PartitionVerdicts` is the lazy mapping map 2 reads:
positions, keys and duplicates of one partition, nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from qudata.dedup import DedupVerdict
from qudata.dedup.files import BAND, DUP, EXACT_KIND, NEAR_KIND, partition_file
from qudata.dedup.near import Documents
from qudata.dedup.runs import read_range, write_run
from qudata.io.on_demand import need

__all__ = ["PartitionVerdicts", "assemble", "cluster_sizes"]

_LOW = np.uint64(2**32 - 1)
_REASONS = {EXACT_KIND: "duplicate_exact", NEAR_KIND: "duplicate_near"}


def _near_verdicts(near_run: Path, refs: np.ndarray) -> np.ndarray:
    """The near-duplicate records of ``refs`` (each one is in ``near_run``)."""
    mapped = np.memmap(near_run, dtype=DUP, mode="r")
    found = np.array(mapped[np.searchsorted(mapped["key"], refs)])
    del mapped
    return found


def _kept_names(directory: Path, kept: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    """The ids (UTF-8) and exact keys of the documents ``kept`` names."""
    ids: list[bytes] = [b""] * len(kept)
    keys = np.empty((len(kept), 16), dtype=np.uint8)
    parts = (kept >> np.uint64(32)).astype(np.int64)
    for part in np.unique(parts):
        chosen = np.flatnonzero(parts == part)
        index = (kept[chosen] & _LOW).astype(np.int64)
        ends = np.memmap(need(partition_file(directory, int(part), ".off")), dtype="<u8",
                         mode="r")  # fmt: skip
        blob = np.memmap(need(partition_file(directory, int(part), ".ids")), dtype=np.uint8,
                         mode="r")  # fmt: skip
        key_rows = np.memmap(need(partition_file(directory, int(part), ".keys")),
                             dtype=np.uint8, mode="r")  # fmt: skip
        keys[chosen] = key_rows.reshape(-1, 16)[index]
        stops = ends[index].astype(np.int64)
        starts = np.where(index > 0, ends[np.maximum(index - 1, 0)], 0).astype(np.int64)
        for at, start, stop in zip(chosen.tolist(), starts.tolist(), stops.tolist(), strict=True):
            ids[at] = blob[start:stop].tobytes()
        del ends, blob, key_rows
    return ids, keys


def assemble(
    directory: Path,
    partition: int,
    exact_runs: Sequence[Path],
    near_run: Path | None,
    counts: Sequence[int],
    near_bits: Path | None,
) -> tuple[int, int]:
    """Write the partition's verdicts; returns (exact, near) duplicate counts."""
    lo = partition << 32
    dups = read_range(exact_runs, DUP, lo, lo + 2**32)
    if near_run is not None and near_bits is not None:
        docs = Documents(counts)
        bits = np.fromfile(near_bits, dtype=np.uint8)
        of_near = docs.test(bits, docs.number(dups["kept"]))
        del bits
        if of_near.any():
            inherited = _near_verdicts(near_run, dups["kept"][of_near])
            dups["kept"][of_near] = inherited["kept"]
            dups["sim"][of_near] = inherited["sim"]
            dups["kind"][of_near] = NEAR_KIND
        dups = np.concatenate([dups, read_range([near_run], DUP, lo, lo + 2**32)])
    dups = dups[np.argsort(dups["key"], kind="stable")]
    ids, keys = _kept_names(directory, dups["kept"])
    np.savez(
        partition_file(directory, partition, ".verdicts.npz"),
        index=(dups["key"] & _LOW).astype(np.int64),
        kind=dups["kind"],
        sim=dups["sim"],
        keys=keys,
        id_ends=np.cumsum([len(i) for i in ids], dtype=np.int64),
        ids=np.frombuffer(b"".join(ids), dtype=np.uint8),
    )
    members = np.empty(len(dups), BAND)
    members["key"], members["ref"] = dups["kept"], dups["key"]
    write_run(partition_file(directory, partition, ".members.run"), members)
    near = int((dups["kind"] == NEAR_KIND).sum())
    return len(dups) - near, near


def cluster_sizes(runs: Sequence[Path], partition: int) -> Counter[int]:
    """Cluster size -> number of clusters, for the clusters kept in ``partition`` that
    have duplicates (a kept document and every duplicate naming it)."""
    lo = partition << 32
    named = read_range(runs, BAND, lo, lo + 2**32)["key"]
    _, counts = np.unique(named, return_counts=True)
    return Counter((counts + 1).tolist())


class PartitionVerdicts(Mapping[int, DedupVerdict]):
    """Position -> verdict for one partition, built on lookup from its files."""

    def __init__(self, directory: Path, partition: int) -> None:
        self.positions = np.fromfile(partition_file(directory, partition, ".pos"), dtype=np.int64)
        keys = np.fromfile(partition_file(directory, partition, ".keys"), dtype=np.uint8)
        self._keys = keys.reshape(-1, 16)
        with np.load(partition_file(directory, partition, ".verdicts.npz")) as saved:
            self._dup = {name: saved[name] for name in saved.files}
        # position -> index, and index -> duplicate row: a lookup is two dict reads
        self._index = {p: i for i, p in enumerate(self.positions.tolist())}
        self._rows = {i: j for j, i in enumerate(self._dup["index"].tolist())}

    def __len__(self) -> int:
        return len(self.positions)

    def __iter__(self) -> Iterator[int]:
        return iter(self._index)

    def __contains__(self, position: object) -> bool:
        return position in self._index

    def __getitem__(self, position: int) -> DedupVerdict:
        i = self._index[position]
        j = self._rows.get(i)
        if j is None:
            return DedupVerdict(None, None, self._keys[i].tobytes().hex())
        d = self._dup
        start = int(d["id_ends"][j - 1]) if j else 0
        kept_id = d["ids"][start : int(d["id_ends"][j])].tobytes().decode("utf-8", "surrogatepass")
        kind = int(d["kind"][j])
        similarity = float(d["sim"][j]) if kind == NEAR_KIND else None
        return DedupVerdict(kept_id, _REASONS[kind], d["keys"][j].tobytes().hex(), similarity)
