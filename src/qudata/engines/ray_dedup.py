"""Duplicate verdicts on Ray Data, identical to the local engine's first-copy-kept rule.

Input: one row per document that passed the quality gate: ``pos`` (file index << 40 |
line), the exact key of its compared text as two int64 columns ``hi``/``lo``, and for near
dedup its pickled MinHash ``sig``. Output: :class:`Verdicts`, small tables the driver
replays in input order.

Exact: ``groupby(key)`` aggregates the first position and the count of each key; only
the keys that repeat come back to the driver (24 bytes each). A document whose key is
there and which is not the first copy repeats the first copy.

Near: each signature's LSH bands (the slices rensa's index hashes) become rows ``(band,
pos)``; ``groupby(band)`` finds the bands that repeat, which are broadcast; each member is
joined to its band's first member by an edge, and a union-find on the driver over these
edges gives the connected components of the candidate graph (exact copies share every
band, so they are in their original's component). Each component is resolved on one
worker, in input order, by the local engine's own ``NearDeduplicator``: a document is a
duplicate of the earliest *kept* document it matches, exactly as locally, since every
candidate the local index finds shares a band with it, hence is in its component.
Only the duplicates come back to the driver (40 bytes each).
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from qudata.config import DedupConfig

__all__ = ["KeyTable", "Verdicts", "duplicate_verdicts"]

_PAIR = np.dtype([("hi", "<i8"), ("lo", "<i8")])
GROUP_ROWS = 80_000


class KeyTable:
    """A sorted table of 128-bit keys (two int64) to int64 values, looked up in bulk."""

    def __init__(self, hi: np.ndarray, lo: np.ndarray | None = None, **values: np.ndarray):
        keys = np.empty(len(hi), _PAIR)
        keys["hi"] = hi
        keys["lo"] = 0 if lo is None else lo
        order = np.argsort(keys, order=("hi", "lo"))
        self.keys = keys[order]
        self.values = {name: np.asarray(v)[order] for name, v in values.items()}

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(
        self, hi: np.ndarray, lo: np.ndarray | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(found, values)``: a mask over the queries, and the values of those found."""
        query = np.empty(len(hi), _PAIR)
        query["hi"] = hi
        query["lo"] = 0 if lo is None else lo
        if not len(self.keys):
            return np.zeros(len(hi), bool), {n: v[:0] for n, v in self.values.items()}
        index = np.minimum(np.searchsorted(self.keys, query), len(self.keys) - 1)
        found = self.keys[index] == query
        return found, {name: v[index[found]] for name, v in self.values.items()}


def _collect(ds: Any, columns: list[str]) -> dict[str, np.ndarray]:
    """The rows of a small dataset as numpy columns on the driver."""
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for batch in ds.iter_batches(batch_format="numpy", batch_size=65536):
        for c in columns:
            parts[c].append(batch[c])
    return {c: np.concatenate(p) if p else np.empty(0, np.int64) for c, p in parts.items()}


def _repeated(ds: Any, key: list[str], partitions: int) -> Any:
    """Per value of ``key`` that occurs more than once: its first ``pos``."""
    from ray.data.aggregate import Count, Min

    counted = ds.groupby(key, num_partitions=partitions).aggregate(
        Min("pos", alias_name="first"), Count(alias_name="n")
    )
    return counted.map_batches(_more_than_once, batch_format="pyarrow")


def _more_than_once(table: pa.Table) -> pa.Table:
    return table.filter(pc.greater(table["n"], 1))


def _band_rows(table: pa.Table, *, bands: int, rows: int) -> pa.Table:
    pos = table["pos"].to_numpy()
    out_band, out_pos = [], []
    for p, sig in zip(pos.tolist(), table["sig"].to_pylist(), strict=True):
        digest = np.asarray(pickle.loads(sig).digest(), dtype="<u4").tobytes()
        width = rows * 4
        for b in range(bands):
            out_band.append(xxhash.xxh3_64_intdigest(digest[b * width : (b + 1) * width], seed=b))
            out_pos.append(p)
    band = np.array(out_band, dtype=np.uint64).view(np.int64)
    return pa.table({"band": pa.array(band, pa.int64()), "pos": pa.array(out_pos, pa.int64())})


def _band_edges(table: pa.Table, *, heads: KeyTable) -> pa.Table:
    found, values = heads.lookup(table["band"].to_numpy())
    pos = table["pos"].to_numpy()[found]
    first = values["first"]
    edge = pos != first
    return pa.table({"pos": pa.array(pos[edge]), "first": pa.array(first[edge])})


def _components(edges: Any) -> KeyTable:
    """Union-find over the candidate edges (on the driver): position -> component (its
    smallest position)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    for batch in edges.iter_batches(batch_format="numpy", batch_size=65536):
        for a, b in zip(batch["pos"].tolist(), batch["first"].tolist(), strict=True):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
                parent.setdefault(min(ra, rb), min(ra, rb))
    nodes = np.fromiter(parent.keys(), np.int64, len(parent))
    roots = np.fromiter((find(n) for n in parent), np.int64, len(parent))
    return KeyTable(nodes, comp=roots)


def _with_group(table: pa.Table, *, components: KeyTable, groups: int) -> pa.Table:
    """The documents that have a candidate, with the group of their component."""
    found, values = components.lookup(table["pos"].to_numpy())
    comp = values["comp"].view(np.uint64)
    group = ((comp * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) % np.uint64(groups)
    return table.filter(pa.array(found)).append_column("group", pa.array(group.astype(np.int64)))


def _resolve_component(
    group: dict[str, np.ndarray], *, threshold: float, num_perm: int, ngram: int
) -> dict[str, np.ndarray]:
    """The local engine's deduplicator over a group of whole components, in input order:
    the same verdicts as locally, since every candidate it would find locally shares a
    band with the document, hence is in its component, and components share no band and
    no exact key (so one deduplicator serves a whole group)."""
    from qudata.quality.near_dedup import NearDeduplicator

    dedup = NearDeduplicator(threshold, num_perm=num_perm, ngram=ngram, workers=1)
    found: list[tuple[int, int, int, int, int]] = []
    similarity: list[float] = []
    for i in np.argsort(group["pos"]).tolist():
        pos = int(group["pos"][i])
        key = struct.pack("<qq", int(group["hi"][i]), int(group["lo"][i]))
        verdict = dedup._resolve(str(pos), key, pickle.loads(group["sig"][i]))
        if verdict.duplicate_of is not None:
            hi, lo = struct.unpack("<qq", bytes.fromhex(verdict.cluster_key))
            near = int(verdict.reason == "duplicate_near")
            found.append((pos, int(verdict.duplicate_of), near, hi, lo))
            similarity.append(-1.0 if verdict.similarity is None else verdict.similarity)
    dedup.close()
    rows = np.array(found, dtype=np.int64).reshape(-1, 5)
    out = {name: rows[:, i] for i, name in enumerate(("pos", "of", "near", "of_hi", "of_lo"))}
    out["sim"] = np.array(similarity, dtype=np.float64)
    return out


class Verdicts:
    """What the driver needs to replay the deduplication: for a document (position and
    key), the kept document it repeats, and for a kept one how many documents repeat it.

    Exact dedup keeps one row per repeated text (24 bytes); near dedup one row per
    duplicate (40 bytes) and one per kept document that has duplicates (16 bytes).
    """

    def __init__(self, *, firsts: KeyTable | None = None, duplicates: KeyTable | None = None):
        self.firsts = firsts
        self.duplicates = duplicates
        self.refs: KeyTable | None = None
        if duplicates is not None:
            kept, refs = np.unique(duplicates.values["of"], return_counts=True)
            self.refs = KeyTable(kept, refs=refs)

    def lookup(
        self, pos: np.ndarray, hi: np.ndarray, lo: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(of, near, cluster hi, cluster lo, refs, similarity)`` per document: ``of`` is
        the position of the kept document it repeats (-1: keep it), ``refs`` how many
        repeat a kept one, ``similarity`` the estimated Jaccard of a near duplicate (-1:
        none)."""
        of = np.full(len(pos), -1, np.int64)
        near = np.zeros(len(pos), bool)
        c_hi, c_lo = hi.copy(), lo.copy()
        refs = np.zeros(len(pos), np.int64)
        sim = np.full(len(pos), -1.0)
        if self.firsts is not None:
            found, values = self.firsts.lookup(hi, lo)
            first = pos.copy()
            first[found] = values["first"]
            count = np.zeros(len(pos), np.int64)
            count[found] = values["n"]
            of = np.where(first != pos, first, -1)
            refs = np.where(first == pos, np.maximum(count - 1, 0), 0)
        if self.duplicates is not None and self.refs is not None:
            found, values = self.duplicates.lookup(pos)
            of[found], near[found] = values["of"], values["near"].astype(bool)
            c_hi[found], c_lo[found] = values["of_hi"], values["of_lo"]
            sim[found] = values["sim"]
            found, values = self.refs.lookup(pos)
            refs[found] = values["refs"]
        return of, near, c_hi, c_lo, refs, sim


def duplicate_verdicts(keyed: Any, cfg: DedupConfig, partitions: int) -> Verdicts:
    """Run exact or near dedup over ``keyed`` (passed documents: ``pos``, ``hi``, ``lo``,
    and ``sig`` for near)."""
    if cfg.method != "near":
        repeated = _collect(
            _repeated(keyed.select_columns(["hi", "lo", "pos"]), ["hi", "lo"], partitions),
            ["hi", "lo", "first", "n"],
        )
        return Verdicts(firsts=KeyTable(repeated.pop("hi"), repeated.pop("lo"), **repeated))
    from qudata.quality.near_dedup import lsh_bands

    keyed = keyed.materialize()
    bands, rows = lsh_bands(cfg.threshold, cfg.num_perm)
    banded = keyed.map_batches(
        _band_rows, batch_format="pyarrow", fn_kwargs={"bands": bands, "rows": rows}
    ).materialize()
    heads = _collect(_repeated(banded, ["band"], partitions), ["band", "first"])
    if not len(heads["band"]):
        empty = np.empty(0, np.int64)
        return Verdicts(
            duplicates=KeyTable(
                empty, of=empty, near=empty, of_hi=empty, of_lo=empty, sim=np.empty(0)
            )
        )
    edges = banded.map_batches(
        _band_edges,
        batch_format="pyarrow",
        fn_kwargs={"heads": KeyTable(heads["band"], first=heads["first"])},
    )
    components = _components(edges)
    # groups of about GROUP_ROWS documents (signatures of 50 MB), at least one per partition
    groups = max(partitions, len(components) // GROUP_ROWS + 1)
    resolved = (
        keyed.map_batches(
            _with_group,
            batch_format="pyarrow",
            fn_kwargs={"components": components, "groups": groups},
        )
        .groupby("group", num_partitions=partitions)
        .map_groups(
            _resolve_component,
            batch_format="numpy",
            fn_kwargs={"threshold": cfg.threshold, "num_perm": cfg.num_perm, "ngram": cfg.ngram},
        )
    )
    found = _collect(resolved, ["pos", "of", "near", "of_hi", "of_lo", "sim"])
    return Verdicts(duplicates=KeyTable(found.pop("pos"), **found))
