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

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import orjson

from qudata.errors import InputError
from qudata.io.input_stream import InputStream, open_input
from qudata.io.json_file import read_json
from qudata.io.lines import DEFAULT_MAX_LINE_BYTES, LongLine
from qudata.io.parquet_file import read_parquet
from qudata.io.record import BOM, RawRecord
from qudata.io.sources import Source

__all__ = ["RawRecord", "read_records"]

_LONG_NUMBER = re.compile(rb"[0-9]{20}")  # 20 digits: maybe an integer beyond uint64


def read_records(
    source: Source,
    *,
    text_key: str = "text",
    id_key: str = "id",
    digest: Any = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_document_chars: int | None = None,
    span: tuple[int, int] | None = None,
    row_groups: tuple[int, int] | None = None,
    first_line: int = 1,
) -> Iterator[RawRecord]:
    """Records of one source, by its kind; ``digest`` hashes the file's bytes as stored.

    ``span`` and ``first_line``: only the lines in bytes ``[start, end)`` of an
    uncompressed JSON Lines file, the first of them numbered ``first_line`` (a partition,
    see :mod:`qudata.plan.partitions`); ``row_groups``: only the row groups ``[first,
    end)`` of a Parquet file, its first row numbered ``first_line``.

    ``max_document_chars`` lets a text file that is surely too long (4 bytes per
    character at most) be rejected without holding it; the pipeline checks every
    document's length after normalising it.
    """
    if source.problem is not None:
        raise InputError(source.detail, source=source.name, reason=source.problem)
    if source.kind == "parquet":
        yield from read_parquet(source, digest, row_groups=row_groups, first_line=first_line)
        return
    with open_input(
        source.path, name=source.name, digest=digest, regular_only=True, span=span
    ) as stream:
        if source.kind == "jsonl":
            yield from _jsonl(source, stream, max_line_bytes, first_line)
        elif source.kind == "json":
            yield from read_json(source, stream)
        else:
            yield _text_file(source, stream, text_key, id_key, max_document_chars)


def _jsonl(
    source: Source, stream: InputStream, max_line_bytes: int, first_line: int = 1
) -> Iterator[RawRecord]:
    number = 0
    try:
        for number, raw in enumerate(stream.lines(max_line_bytes), first_line):
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


def _has_huge_float(value: Any) -> bool:
    """A float of 2**64 or more anywhere in ``value`` (what orjson makes of a huge integer);
    a walk of the parsed row is far cheaper than a regex over every line's bytes."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            continue
        if kind is float:
            if abs(item) >= 18446744073709551616.0:
                return True
        elif kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return False


def _json_line(origin: str, number: int, raw: bytes) -> RawRecord:
    try:
        row = orjson.loads(raw)
        # orjson reads an integer beyond 64 bits as a float: read such a line again exactly
        if _has_huge_float(row) and _LONG_NUMBER.search(raw):
            row = json.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "utf-8" in message.lower() or "surrogate" in message.lower():
            return RawRecord(origin, number, None, "invalid UTF-8")
        return RawRecord(origin, number, None, f"invalid JSON: {message}")
    if isinstance(row, dict):
        return RawRecord(origin, number, row)
    kind = "an array" if isinstance(row, list) else type(row).__name__
    return RawRecord(origin, number, None, f"expected a JSON object, got {kind}")


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
