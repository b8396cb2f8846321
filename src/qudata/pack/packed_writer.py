"""The writer of ``-f packed``: one split's sequences, packed into rows, as Parquet shards.

Records (one tokenized conversation each: ``{"doc", "ids", "spans"}``, or a plain
document's ``{"doc", "ids"}``) arrive in input order. They are spilled to a temporary
file beside the output as they come; memory holds 16 bytes per sequence (its offset
and size in the spill, its token length; packing adds 24 while it runs). Plain
documents are pretraining data: joined (each already ends with EOD) and cut into blocks
of exactly ``seq_len`` tokens, the last block of the split shorter; a block is one
sequence of several segments.

:meth:`PackedWriter.close` packs the whole split (:mod:`qudata.pack.bfd`), then writes
the rows in row order, each with its sequences in input order, to
``<split>-NNNNN-of-NNNNN.parquet`` (``output.shard_records`` rows, or about
``output.shard_size`` bytes of ids, positions and masks, per shard). Columns:
``input_ids`` (list<int32>), ``position_ids`` (list<int32>, from 0 at each segment),
``seq_lengths`` (list<int32>, summing to the row length), ``assistant_masks``
(list<int8>) and ``doc_ids`` (list<string>, one per segment). Each file's
:class:`~qudata.account.FileStats` carries its ``packing`` figures, and the
split's lower bound on rows (:func:`~qudata.pack.bfd.rows_lower_bound`).

``layout="megatron_bridge"``: Megatron-Bridge's packed Parquet instead
(``GPTSFTPackedParquetDataset``): ``<split>-NNNNN-of-NNNNN.idx.parquet`` with
``input_ids`` (list<int32>), ``seq_start_id`` (list<int32>, the start of each sequence,
from 0) and ``loss_mask`` (list<int8>, rolled by one within each sequence as Bridge's
packer rolls it: position ``i`` is 1 when token ``i + 1``, its label, is in the loss; a
sequence's last position is 0), and ``<split>-metadata.json``: a list of one object with
Bridge's packing figures (``dataset_max_seqlen``, ``max_samples_per_bin``,
``packing_factor``, ``packing_efficiency`` in percent, ``pack_size``,
``min_packed_seqlen``), its ``pack_metadata_file_path``.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from qudata.account import FileStats
from qudata.io.parquet import import_pyarrow
from qudata.pack.bfd import pack, rows_lower_bound
from qudata.pack.packed_entries import entry, next_entry, segments_of

__all__ = ["FILL_BINS", "PackedWriter", "bridge_schema", "row_schema"]

_CODECS = {"none": "none", "gzip": "gzip", "zstd": "zstd"}
_ROWS_PER_GROUP = 256
_BYTES_PER_TOKEN = 9  # int32 id + int32 position + int8 mask
#: the fill distribution: rows by tokens / seq_len, in 10 bins of 10%
FILL_BINS = 10


def row_schema() -> Any:
    pa = import_pyarrow()
    return pa.schema(
        [
            ("input_ids", pa.list_(pa.int32())),
            ("position_ids", pa.list_(pa.int32())),
            ("seq_lengths", pa.list_(pa.int32())),
            ("assistant_masks", pa.list_(pa.int8())),
            ("doc_ids", pa.list_(pa.string())),
        ]
    )


def bridge_schema() -> Any:
    pa = import_pyarrow()
    return pa.schema(
        [
            ("input_ids", pa.list_(pa.int32())),
            ("seq_start_id", pa.list_(pa.int32())),
            ("loss_mask", pa.list_(pa.int8())),
        ]
    )


class PackedWriter:
    """Writes one split of ``-f packed`` (the writer interface of the sharded writers)."""

    def __init__(
        self,
        directory: Path,
        split: str,
        *,
        relative_to: Path,
        seq_len: int,
        strategy: str = "bfd",
        codec: str = "none",
        max_bytes: int | None = None,
        max_records: int | None = None,
        layout: str = "trl",
        identity: dict[str, Any] | None = None,
    ) -> None:
        self.identity = identity or {}
        self.pa = import_pyarrow()
        self.bridge = layout == "megatron_bridge"
        # Megatron-Bridge's figures: sequences, rows, longest sequence, most sequences
        # in a row, shortest row, tokens
        self.figures = {"sequences": 0, "rows": 0, "longest": 0, "most": 0, "tokens": 0}
        self.shortest: int | None = None
        self.directory, self.split, self.relative_to = directory, split, relative_to
        self.seq_len, self.strategy, self.codec = seq_len, strategy, codec
        self.max_bytes, self.max_records = max_bytes, max_records
        self._spill_path = directory / f".{split}.packed.spill"
        self._spill: Any = None
        self._offsets, self._sizes, self._lengths = array("q"), array("i"), array("i")
        self._stream: list[tuple[str, Any]] = []  # the open pretraining block: [doc, ids] pieces
        self._streamed = 0
        self._done: list[tuple[Path, FileStats]] = []
        self._open_path: Path | None = None
        self._bound = 0  # the split's rows_lower_bound, once packed

    def write_document(self, records: Sequence[dict[str, Any]], *, tokens: int = 0) -> None:
        import numpy as np

        for record in records:
            ids = np.asarray(record["ids"], dtype=np.int32)
            if "spans" not in record:
                self._add_stream(record["doc"], ids)
                continue
            if len(ids) > self.seq_len:
                raise ValueError(f"a sequence of {len(ids)} tokens > seq_len {self.seq_len}")
            self._add([(record["doc"], ids, record["spans"])], len(ids))

    def write_encoded(self, data: bytes, *, tokens: Sequence[int] = ()) -> None:
        """One document's records as :class:`SequenceEncoder` made them."""
        at = 0
        while at < len(data):
            entry, at = next_entry(data, at)
            [(doc, ids, spans)] = segments_of(entry)  # a record: one segment
            if spans is None:
                self._add_stream(doc, ids)
            elif len(ids) > self.seq_len:
                raise ValueError(f"a sequence of {len(ids)} tokens > seq_len {self.seq_len}")
            else:  # a sequence of its own: spilled as the entry it came in
                self._add_entry(entry, len(ids))

    def _add_stream(self, doc: str, ids: Any) -> None:
        at = 0
        while at < len(ids):
            take = min(len(ids) - at, self.seq_len - self._streamed)
            self._stream.append((doc, ids[at : at + take]))
            self._streamed += take
            at += take
            if self._streamed == self.seq_len:
                self._flush_stream()

    def _flush_stream(self) -> None:
        if self._stream:
            segments = [(doc, ids, [[0, len(ids)]]) for doc, ids in self._stream]
            self._add(segments, self._streamed)
            self._stream, self._streamed = [], 0

    def _add(self, segments: list[tuple[str, Any, Any]], length: int) -> None:
        """Spill one sequence: its segments' docs, lengths and spans, then their ids."""
        heads = [[doc, len(ids), spans] for doc, ids, spans in segments]
        self._add_entry(entry(heads, [ids for _, ids, _ in segments]), length)

    def _add_entry(self, data: bytes, length: int) -> None:
        """Spill an entry (:func:`~qudata.pack.packed_entries.entry`) of ``length`` tokens."""
        if self._spill is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._spill = open(self._spill_path, "w+b")  # noqa: SIM115 (closed in close/abort)
        self._offsets.append(self._spill.tell())
        self._sizes.append(len(data))
        self._lengths.append(length)
        self._spill.write(data)

    def abort(self) -> None:
        if self._spill is not None:
            self._spill.close()
        self._spill_path.unlink(missing_ok=True)
        if self._open_path is not None:
            self._open_path.unlink(missing_ok=True)
        for path, _ in self._done:
            path.unlink(missing_ok=True)

    def close(self) -> list[FileStats]:
        """Pack the split, write its shards, give them their final names."""
        self._flush_stream()
        try:
            if self._spill is not None:
                self._write_rows()
        finally:
            if self._spill is not None:
                self._spill.close()
            self._spill_path.unlink(missing_ok=True)
        return self._finish()

    def _write_rows(self) -> None:
        import numpy as np

        lengths = np.frombuffer(self._lengths, dtype=np.intc)
        rows = pack(lengths, self.seq_len, self.strategy)
        self._bound = rows_lower_bound(lengths, self.seq_len)
        order = np.lexsort((np.arange(len(rows)), rows))  # by row, then input order
        bounds = np.flatnonzero(np.diff(rows[order])) + 1
        shard = _Shard(self, 0)
        batch: list[list[Any]] = []
        pending = 0  # tokens in batch
        self._spill.flush()
        for members in np.split(order, bounds):
            segments: list[Any] = []
            for index in members.tolist():
                self._spill.seek(self._offsets[index])
                segments.extend(segments_of(self._spill.read(self._sizes[index])))
                pending += self._lengths[index]
            batch.append(segments)
            if len(batch) >= _ROWS_PER_GROUP or shard.full(len(batch), pending):
                shard.write(batch)
                batch, pending = [], 0
                if shard.full(0, 0):
                    self._done.append(shard.close())
                    shard = _Shard(self, len(self._done))
        if batch:
            shard.write(batch)
        if shard.stats.records:
            self._done.append(shard.close())
        else:
            shard.discard()

    def _finish(self) -> list[FileStats]:
        total, files = len(self._done), []
        suffix = ".idx.parquet" if self.bridge else ".parquet"
        for number, (path, stats) in enumerate(self._done):
            final = self.directory / f"{self.split}-{number:05d}-of-{total:05d}{suffix}"
            digest = hashlib.sha256()
            with open(path, "rb") as done:
                for chunk in iter(lambda: done.read(1 << 20), b""):
                    digest.update(chunk)
            stats.sha256, stats.bytes = digest.hexdigest(), path.stat().st_size
            if stats.packing is not None:  # the split's, for the manifest's summary
                stats.packing["split_lower_bound_l2"] = self._bound
            os.replace(path, final)
            stats.path = final.relative_to(self.relative_to).as_posix()
            files.append(stats)
        if self.bridge and files:
            files.append(self._bridge_metadata())
        return files

    def _bridge_metadata(self) -> FileStats:
        """``<split>-metadata.json``: Megatron-Bridge's packing figures of the split."""
        figures, rows = self.figures, max(1, self.figures["rows"])
        metadata = [
            {
                "dataset_max_seqlen": figures["longest"],
                "max_samples_per_bin": figures["most"],
                "packing_factor": round(figures["sequences"] / rows, 2),
                "packing_efficiency": round(figures["tokens"] / rows / self.seq_len * 100, 2),
                "pack_size": self.seq_len,
                "min_packed_seqlen": self.shortest or 0,
            }
        ]
        data = orjson.dumps(metadata, option=orjson.OPT_INDENT_2) + b"\n"
        path = self.directory / f"{self.split}-metadata.json"
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)
        stats = FileStats(path=path.relative_to(self.relative_to).as_posix(), split=self.split)
        stats.sha256, stats.bytes = hashlib.sha256(data).hexdigest(), len(data)
        return stats


class _Shard:
    """One Parquet file being written, and its figures."""

    def __init__(self, owner: PackedWriter, number: int) -> None:
        import pyarrow.parquet as pq

        self.owner = owner
        self.path = owner.directory / f".{owner.split}-{number:05d}.parquet.shard"
        owner._open_path = self.path
        schema = bridge_schema() if owner.bridge else row_schema()
        self.writer = pq.ParquetWriter(self.path, schema, compression=_CODECS[owner.codec])
        self.stats = FileStats(path="", split=owner.split)
        self.docs: set[str] = set()
        self.fill = [0] * FILL_BINS

    def full(self, rows: int, tokens: int) -> bool:
        """The shard is full with ``rows`` and ``tokens`` more."""
        owner, stats = self.owner, self.stats
        size = (stats.tokens + tokens) * _BYTES_PER_TOKEN
        return (owner.max_records is not None and stats.records + rows >= owner.max_records) or (
            owner.max_bytes is not None and size >= owner.max_bytes
        )

    def write(self, batch: list[list[Any]]) -> None:
        import numpy as np

        pa, seq_len = self.owner.pa, self.owner.seq_len
        id_parts: list[np.ndarray[Any, Any]] = []
        count = 0  # the ids so far
        masks: list[np.ndarray[Any, Any]] = []
        lengths: list[int] = []
        docs: list[str] = []
        row_ends, segment_ends = [0], [0]
        figures = self.owner.figures
        for row in batch:
            for doc, seq, spans in row:
                mask = np.zeros(len(seq), dtype=np.int8)
                for low, high in spans:
                    mask[low:high] = 1
                if self.owner.bridge:  # Bridge's labels: position i trains token i + 1
                    mask = np.append(mask[1:], np.int8(0))
                figures["longest"] = max(figures["longest"], len(seq))
                id_parts.append(seq)
                count += len(seq)
                masks.append(mask)
                lengths.append(len(seq))
                docs.append(doc)
                self.docs.add(doc)
            row_ends.append(count)
            segment_ends.append(len(lengths))
            tokens = row_ends[-1] - row_ends[-2]
            figures["most"] = max(figures["most"], len(row))
            figures["rows"] += 1
            figures["sequences"] += len(row)
            figures["tokens"] += tokens
            shortest = self.owner.shortest
            self.owner.shortest = tokens if shortest is None else min(shortest, tokens)
            self.fill[min(FILL_BINS - 1, tokens * FILL_BINS // seq_len)] += 1
        ids = np.concatenate(id_parts).astype(np.int32) if id_parts else np.zeros(0, np.int32)
        sizes = np.asarray(lengths, dtype=np.int32)
        starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
        positions = np.arange(len(ids), dtype=np.int32) - starts.astype(np.int32)
        by_token = pa.array(np.asarray(row_ends, dtype=np.int32))
        by_segment = pa.array(np.asarray(segment_ends, dtype=np.int32))
        all_masks = np.concatenate(masks) if masks else np.zeros(0, np.int8)
        if self.owner.bridge:
            row_of = np.repeat(np.arange(len(batch)), np.diff(segment_ends))
            first = np.asarray(row_ends[:-1], dtype=np.int32)[row_of] if lengths else starts[:0]
            seq_starts = (np.cumsum(sizes) - sizes).astype(np.int32) - first
            bridge = [
                pa.ListArray.from_arrays(by_token, pa.array(ids)),
                pa.ListArray.from_arrays(by_segment, pa.array(seq_starts.astype(np.int32))),
                pa.ListArray.from_arrays(by_token, pa.array(all_masks)),
            ]
            table = pa.Table.from_arrays(bridge, schema=bridge_schema())
            self.writer.write_table(table, row_group_size=_ROWS_PER_GROUP)
            self.stats.records += len(batch)
            self.stats.tokens += len(ids)
            return
        columns = [
            pa.ListArray.from_arrays(by_token, pa.array(ids)),
            pa.ListArray.from_arrays(by_token, pa.array(positions)),
            pa.ListArray.from_arrays(by_segment, pa.array(sizes)),
            pa.ListArray.from_arrays(by_token, pa.array(all_masks)),
            pa.ListArray.from_arrays(by_segment, pa.array(docs, type=pa.string())),
        ]
        table = pa.Table.from_arrays(columns, schema=row_schema())
        self.writer.write_table(table, row_group_size=_ROWS_PER_GROUP)
        self.stats.records += len(batch)
        self.stats.tokens += len(ids)

    def close(self) -> tuple[Path, FileStats]:
        self.writer.close()
        self.owner._open_path = None
        stats = self.stats
        stats.documents = len(self.docs)
        stats.packing = {
            "seq_len": self.owner.seq_len,
            "strategy": self.owner.strategy,
            "rows": stats.records,
            "fill": self.fill,
            **self.owner.identity,
        }
        return self.path, stats

    def discard(self) -> None:
        self.writer.close()
        self.owner._open_path = None
        self.path.unlink(missing_ok=True)
