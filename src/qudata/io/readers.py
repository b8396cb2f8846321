"""Streaming readers: each yields :class:`RawRecord` in file order, in flat memory.

A record that cannot be read (invalid JSON or UTF-8, not an object) is yielded
with ``error`` set instead of raising, so the pipeline decides whether to skip
it (into ``rejects.jsonl``) or to stop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from qudata.errors import InputError, MissingExtraError
from qudata.io.compression import open_for_reading
from qudata.io.sources import Source

__all__ = ["RawRecord", "read_records"]

_LONG_NUMBER = re.compile(rb"[0-9]{20}")  # 20 digits: maybe an integer beyond uint64


@dataclass(slots=True)
class RawRecord:
    """One input record: where it is (``origin``, ``line``) and its row, or why it is bad.

    ``line`` is the 1-based line for JSONL, the 1-based item for JSON arrays and
    the 1-based row for Parquet.
    """

    origin: str
    line: int
    row: dict[str, Any] | None
    error: str | None = None
    reason: str = "invalid"  # the drop code when ``error`` is set


def read_records(
    source: Source, *, text_key: str = "text", id_key: str = "id", digest: Any = None
) -> Iterator[RawRecord]:
    """Records of one source, by its kind; ``digest`` hashes the file's bytes as stored."""
    try:
        if source.kind == "jsonl":
            yield from _jsonl(source, digest)
        elif source.kind == "json":
            yield from _json_array(source, digest)
        elif source.kind == "parquet":
            yield from _parquet(source, digest)
        else:
            yield _text_file(source, text_key, id_key, digest)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=source.name) from None


def _jsonl(source: Source, digest: Any) -> Iterator[RawRecord]:
    with open_for_reading(source.path, digest=digest) as stream:
        for number, raw in enumerate(stream, 1):
            if not raw.strip():
                continue
            try:
                row = orjson.loads(raw)
                if _LONG_NUMBER.search(raw):  # orjson reads integers beyond 64 bits as floats
                    row = json.loads(raw)
            except orjson.JSONDecodeError as exc:
                message = str(exc)
                if "utf-8" in message.lower() or "surrogate" in message.lower():
                    yield RawRecord(source.name, number, None, "invalid UTF-8")
                else:
                    yield RawRecord(source.name, number, None, f"invalid JSON: {message}")
                continue
            if isinstance(row, dict):
                yield RawRecord(source.name, number, row)
            else:
                kind = "an array" if isinstance(row, list) else type(row).__name__
                yield RawRecord(source.name, number, None, f"expected a JSON object, got {kind}")


def _json_array(source: Source, digest: Any) -> Iterator[RawRecord]:
    import ijson

    with open_for_reading(source.path, digest=digest) as stream:
        number = 0
        try:
            for number, item in enumerate(ijson.items(stream, "item", use_float=True), 1):
                if isinstance(item, dict):
                    yield RawRecord(source.name, number, item)
                else:
                    got = type(item).__name__
                    yield RawRecord(source.name, number, None, f"expected a JSON object, got {got}")
        except ijson.JSONError as exc:
            raise InputError(
                f"invalid JSON after item {number}: {exc} (expected a JSON array of objects)",
                source=source.name,
            ) from None


def _parquet(source: Source, digest: Any) -> Iterator[RawRecord]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtraError("parquet", "pyarrow", feature="Parquet input") from None
    if digest is not None:  # Parquet is read by random access: hash it in one pass first
        with open(source.path, "rb") as raw:
            for chunk in iter(lambda: raw.read(1 << 20), b""):
                digest.update(chunk)
    number = 0
    for batch in pq.ParquetFile(source.path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield RawRecord(source.name, number, row)


def _text_file(source: Source, text_key: str, id_key: str, digest: Any) -> RawRecord:
    data = Path(source.path).read_bytes()
    if digest is not None:
        digest.update(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRecord(source.name, 1, None, f"invalid UTF-8 at byte {exc.start}")
    row: dict[str, Any] = {id_key: source.name, text_key: text, "source": source.name}
    first = text.lstrip().split("\n", 1)[0]
    if source.path.endswith(".md") and first.startswith("# "):
        row["title"] = first[2:].strip()
    return RawRecord(source.name, 1, row)
