"""Streaming readers: each yields :class:`RawRecord` in file order, in flat memory.

A record that cannot be read (invalid JSON or UTF-8, not an object, a line over
``max_line_bytes``) is yielded with ``error`` and ``reason`` set instead of raising,
so the pipeline decides whether to skip it (into ``rejects.jsonl``) or to stop.

An input that cannot be read on (a truncated or corrupt ``.gz``, ``.zst`` or Parquet
file, invalid JSON inside a ``.json`` file, an entry that is not a regular file or
not readable) raises :class:`~qudata.errors.InputError` with a reason
(``truncated_input``, ``invalid``, ``not_a_regular_file``, ``permission_denied``,
``unreadable``): never a quiet end after part of the file. A leading UTF-8 byte order
mark is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from qudata.errors import InputError, MissingExtraError
from qudata.io.compression import InputStream, open_input
from qudata.io.lines import DEFAULT_MAX_LINE_BYTES, LongLine
from qudata.io.sources import Source

__all__ = ["RawRecord", "read_records"]

BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class RawRecord:
    """One input record: where it is (``origin``, ``line``) and its row, or why it is bad.

    ``line`` is the 1-based line for JSONL, the 1-based item for JSON arrays and
    the 1-based row for Parquet. ``reason`` is the reject reason of a bad record.
    """

    origin: str
    line: int
    row: dict[str, Any] | None
    error: str | None = None
    reason: str = "invalid"


def read_records(
    source: Source,
    *,
    text_key: str = "text",
    id_key: str = "id",
    digest: Any = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_document_chars: int | None = None,
) -> Iterator[RawRecord]:
    """Records of one source, by its kind; ``digest`` hashes the file's bytes as stored.

    ``max_document_chars`` lets a text file that is surely too long (4 bytes per
    character at most) be rejected without holding it; the pipeline checks every
    document's length after normalising it.
    """
    if source.problem is not None:
        raise InputError(source.detail, source=source.name, reason=source.problem)
    if source.kind == "parquet":
        yield from _parquet(source, digest)
        return
    with open_input(source.path, name=source.name, digest=digest, regular_only=True) as stream:
        if source.kind == "jsonl":
            yield from _jsonl(source, stream, max_line_bytes)
        elif source.kind == "json":
            yield from _json(source, stream)
        else:
            yield _text_file(source, stream, text_key, id_key, max_document_chars)


def _jsonl(source: Source, stream: InputStream, max_line_bytes: int) -> Iterator[RawRecord]:
    number = 0
    try:
        for number, raw in enumerate(stream.lines(max_line_bytes), 1):
            if isinstance(raw, LongLine):
                yield RawRecord(
                    source.name, number, None, raw.describe(max_line_bytes), "line_too_long"
                )
                continue
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            if not raw.strip():
                continue
            yield _json_line(source.name, number, raw)
    except InputError as exc:
        where = f"after line {number}" if number else "before the first line"
        raise InputError(f"{exc.detail} ({where})", source=source.name, reason=exc.reason) from None


def _json_line(origin: str, number: int, raw: bytes) -> RawRecord:
    try:
        row = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "utf-8" in message.lower() or "surrogate" in message.lower():
            return RawRecord(origin, number, None, "invalid UTF-8")
        return RawRecord(origin, number, None, f"invalid JSON: {message}")
    if isinstance(row, dict):
        return RawRecord(origin, number, row)
    kind = "an array" if isinstance(row, list) else type(row).__name__
    return RawRecord(origin, number, None, f"expected a JSON object, got {kind}")


class _Prefixed:
    """A stream whose first bytes were already read (to see what the file holds)."""

    def __init__(self, head: bytes, stream: InputStream) -> None:
        self.head = head
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size < 0:
                data, self.head = self.head + self.stream.read(), b""
                return data
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.stream.read(size)


def _json(source: Source, stream: InputStream) -> Iterator[RawRecord]:
    """A JSON array of objects (one record per item) or one object (one record)."""
    import ijson

    head = stream.read(1 << 16)
    if head.startswith(BOM):
        head = head[len(BOM) :]
    while head and not head.lstrip():  # whitespace only so far
        more = stream.read(1 << 16)
        if not more:
            break
        head = head.lstrip() + more
    first = head.lstrip()[:1]
    if first not in (b"[", b"{"):
        got = "an empty file" if not first else "a JSON value that is not an array or object"
        yield RawRecord(
            source.name, 1, None, f"expected a JSON array of objects or one object, got {got}"
        )
        return
    array = first == b"["
    number = 0
    try:
        events = ijson.basic_parse(_Prefixed(head, stream), use_float=True)
        for number, item in enumerate(_values(events, array=array), 1):
            if isinstance(item, dict):
                yield RawRecord(source.name, number, item)
            elif item is _TOO_DEEP:
                detail = f"nested deeper than {MAX_DEPTH:,} levels"
                yield RawRecord(source.name, number, None, detail)
            else:
                got = type(item).__name__
                yield RawRecord(source.name, number, None, f"expected a JSON object, got {got}")
    except ijson.JSONError as exc:
        reason = "truncated_input" if isinstance(exc, ijson.IncompleteJSONError) else "invalid"
        what = "a JSON array of objects" if array else "one JSON object"
        raise InputError(
            f"invalid JSON after item {number} near byte {stream.offset:,}: "
            f"{' '.join(str(exc).split())} (expected {what})",
            source=source.name,
            reason=reason,
        ) from None


MAX_DEPTH = 1024  # as orjson's parser, for JSON Lines
_TOO_DEEP = object()
_OPEN = ("start_map", "start_array")
_CLOSE = ("end_map", "end_array")


def _values(events: Iterator[tuple[str, Any]], *, array: bool) -> Iterator[Any]:
    """The items of a top-level array, or the one top-level object, built from ijson's
    events without prefixes (``ijson.items`` builds a prefix per event: quadratic in the
    nesting depth). An item nested deeper than MAX_DEPTH is skipped: ``_TOO_DEEP``."""
    from ijson.common import ObjectBuilder  # type: ignore[import-untyped, unused-ignore]

    if array:
        next(events, None)  # the top-level start_array
    for event, value in events:
        if array and event == "end_array":
            break
        if event not in _OPEN:
            yield value
            continue
        builder, depth, deep = ObjectBuilder(), 0, False
        while True:
            depth += (event in _OPEN) - (event in _CLOSE)
            deep = deep or depth > MAX_DEPTH
            if not deep:
                builder.event(event, value)
            if depth == 0:
                break
            step = next(events, None)
            if step is None:
                return
            event, value = step
        yield _TOO_DEEP if deep else builder.value
        if not array:
            break
    for _ in events:  # the rest must be nothing but whitespace: ijson raises otherwise
        pass


def _parquet(source: Source, digest: Any) -> Iterator[RawRecord]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtraError("parquet", "pyarrow", feature="Parquet input") from None
    with open_input(source.path, name=source.name, digest=digest, regular_only=True) as stream:
        # Parquet is read by random access: hash the file in one pass first
        while stream.read(1 << 20):
            pass
        size = stream.offset
    number = 0
    start = 0
    try:
        parquet = pq.ParquetFile(source.path)
        for group in range(parquet.num_row_groups):
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
        where = f"row group from byte {start:,}" if number or start else f"footer at byte {size:,}"
        raise InputError(
            f"truncated or corrupt Parquet data after row {number} ({where}): "
            f"{' '.join(str(exc).split())}",
            source=source.name,
            reason="truncated_input",
        ) from None


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


def _text_file(
    source: Source, stream: InputStream, text_key: str, id_key: str, max_chars: int | None
) -> RawRecord:
    if max_chars is not None and os.path.getsize(source.path) > 4 * max_chars + len(BOM):
        size = 0
        while chunk := stream.read(1 << 20):  # hashed, never held
            size += len(chunk)
        detail = (
            f"a text file of {size:,} bytes: more than {max_chars:,} characters "
            "(input.max_document_chars)"
        )
        return RawRecord(source.name, 1, None, detail, "document_too_long")
    data = stream.read()
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRecord(source.name, 1, None, f"invalid UTF-8 at byte {exc.start}")
    row: dict[str, Any] = {id_key: source.name, text_key: text, "source": source.name}
    first = text.lstrip().split("\n", 1)[0]
    if source.path.endswith(".md") and first.startswith("# "):
        row["title"] = first[2:].strip()
    return RawRecord(source.name, 1, row)
