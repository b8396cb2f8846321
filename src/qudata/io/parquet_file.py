"""Parquet input: rows as records, row group by row group, in flat memory.

Values become JSON values (timestamps as ISO 8601 text, decimals as exact text); a
truncated or corrupt file stops with :class:`~qudata.errors.InputError` (reason
``truncated_input``) naming the byte offset of the row group or footer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from qudata.errors import InputError, MissingExtraError
from qudata.io.input_stream import open_input
from qudata.io.record import RawRecord
from qudata.io.sources import Source

__all__ = ["read_parquet"]


def read_parquet(
    source: Source,
    digest: Any,
    *,
    row_groups: tuple[int, int] | None = None,
    first_line: int = 1,
) -> Iterator[RawRecord]:
    """The rows of ``source`` (of its row groups ``[first, end)``), numbered from
    ``first_line``; ``digest`` (if given) hashes the whole file first."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingExtraError("parquet", "pyarrow", feature="Parquet input") from exc
    with open_input(source.path, name=source.name, digest=digest, regular_only=True) as stream:
        # Parquet is read by random access: hash the file in one pass first
        while digest is not None and stream.read(1 << 20):
            pass
        size = stream.offset if digest is not None else os.path.getsize(source.path)
    number = first_line - 1
    start = 0
    try:
        parquet = pq.ParquetFile(source.path)
        first, end = row_groups or (0, parquet.num_row_groups)
        for group in range(first, end):
            meta = parquet.metadata.row_group(group)
            if meta.num_columns:
                column = meta.column(0)
                start = column.dictionary_page_offset or column.data_page_offset or 0
            for batch in parquet.iter_batches(batch_size=1024, row_groups=[group]):
                for row in batch.to_pylist():
                    number += 1
                    try:
                        yield RawRecord(source.name, number, _json_safe(row))
                    except _NotJSON as bad:
                        yield RawRecord(source.name, number, None, str(bad))
    except (OSError, ValueError, pa.ArrowException) as exc:
        where = f"row group from byte {start:,}" if start else f"footer at byte {size:,}"
        raise InputError(
            f"truncated or corrupt Parquet data after row {number} ({where}): "
            f"{' '.join(str(exc).split())}",
            source=source.name,
            reason="truncated_input",
        ) from exc


class _NotJSON(ValueError):
    """A Parquet value with no JSON form."""


def _json_safe(value: Any) -> Any:
    """Parquet values as JSON values: timestamps and dates as ISO 8601 text, durations as
    seconds, decimals as their exact text, binary as UTF-8 text; binary that is not
    UTF-8 makes the row a bad record."""
    import datetime
    import decimal

    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise _NotJSON("a binary value that is not UTF-8 text") from None
    return value
