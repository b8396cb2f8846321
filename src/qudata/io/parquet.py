"""Sharded Parquet writing with a schema declared before the first row.

Arrow infers a schema from data when none is given, and a key that first
appears late or changes type breaks it; here the schema is fixed up front.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qudata.account import FileStats
from qudata.errors import MissingExtraError

__all__ = ["ParquetShardWriter", "import_pyarrow"]

_CODECS = {"none": "none", "gzip": "gzip", "zstd": "zstd"}
_ROWS_PER_GROUP = 2048


def import_pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet
    except ImportError as exc:
        raise MissingExtraError("parquet", "pyarrow", feature="Parquet output") from exc
    return pa


class ParquetShardWriter:
    """Writes one split as ``<split>-NNNNN-of-NNNNN.parquet`` shards (same API as ShardedWriter).

    ``codec`` is Parquet's internal compression; the extension stays ``.parquet``.
    ``max_bytes`` counts the text of the rows written (an estimate of the data size).
    """

    def __init__(
        self,
        directory: Path,
        split: str,
        *,
        schema: Any,
        relative_to: Path,
        codec: str = "none",
        max_bytes: int | None = None,
        max_records: int | None = None,
    ) -> None:
        self.pa = import_pyarrow()
        self.directory, self.split, self.schema = directory, split, schema
        self.relative_to, self.codec = relative_to, codec
        self.max_bytes, self.max_records = max_bytes, max_records
        self._rows: list[dict[str, Any]] = []
        self._tables: list[Any] = []  # or slices of Arrow tables (write_rows), not both
        self._table_rows = 0
        self._writer: Any = None
        self._stats: FileStats | None = None
        self._size = 0
        self._done: list[tuple[Path, FileStats]] = []

    def _open(self) -> None:
        import pyarrow.parquet as pq

        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f".{self.split}-{len(self._done):05d}.parquet.shard"
        self._writer = pq.ParquetWriter(path, self.schema, compression=_CODECS[self.codec])
        self._path = path
        self._stats = FileStats(path="", split=self.split)
        self._size = 0

    def _flush(self) -> None:
        if self._rows:
            table = self.pa.Table.from_pylist(self._rows, schema=self.schema)
            self._writer.write_table(table, row_group_size=_ROWS_PER_GROUP)
            self._rows = []
        if self._tables:  # the same rows, already Arrow: one chunk, as from_pylist makes
            table = self.pa.concat_tables(self._tables).combine_chunks()
            self._writer.write_table(table, row_group_size=_ROWS_PER_GROUP)
            self._tables, self._table_rows = [], 0

    def _finish_shard(self) -> None:
        assert self._stats is not None
        self._flush()
        self._writer.close()
        self._done.append((self._path, self._stats))
        self._writer = self._stats = None

    def write_document(self, records: Sequence[dict[str, Any]], *, tokens: int = 0) -> None:
        self._start()
        assert self._stats is not None
        self._rows.extend(records)
        self._size += sum(len(r.get("text") or "") for r in records)
        self._stats.documents += 1
        self._stats.records += len(records)
        self._stats.tokens += tokens
        if len(self._rows) >= _ROWS_PER_GROUP:
            self._flush()

    def write_rows(self, table: Any, *, size: int, tokens: int = 0) -> None:
        """One document's rows as an Arrow table of :attr:`schema` (map 2's part);
        ``size``: the characters of their ``text`` (what :meth:`write_document` counts)."""
        self._start()
        assert self._stats is not None
        self._tables.append(table)
        self._table_rows += table.num_rows
        self._size += size
        self._stats.documents += 1
        self._stats.records += table.num_rows
        self._stats.tokens += tokens
        if self._table_rows >= _ROWS_PER_GROUP:
            self._flush()

    def _start(self) -> None:
        """A new shard when the current one is full, or none is open."""
        if self._stats is not None and (
            (self.max_bytes is not None and self._size >= self.max_bytes)
            or (self.max_records is not None and self._stats.records >= self.max_records)
        ):
            self._finish_shard()
        if self._stats is None:
            self._open()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._path.unlink(missing_ok=True)
        for path, _ in self._done:
            path.unlink(missing_ok=True)

    def close(self) -> list[FileStats]:
        if self._stats is not None:
            self._finish_shard()
        total = len(self._done)
        files = []
        for index, (path, stats) in enumerate(self._done):
            final = self.directory / f"{self.split}-{index:05d}-of-{total:05d}.parquet"
            digest = hashlib.sha256()
            with open(path, "rb") as done:
                for chunk in iter(lambda: done.read(1 << 20), b""):
                    digest.update(chunk)
            stats.sha256 = digest.hexdigest()
            stats.bytes = path.stat().st_size
            os.replace(path, final)
            stats.path = final.relative_to(self.relative_to).as_posix()
            files.append(stats)
        return files
