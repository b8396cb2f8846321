"""JSON files: an array of objects (one record per item) or one object (one record).

Built from ijson's events without prefixes, so time is linear in the nesting depth
(``ijson.items`` builds a prefix string per event: quadratic); an item nested deeper
than :data:`MAX_DEPTH` is a bad record and the file reads on. A scalar or empty file
is one bad record; invalid JSON stops the file (:class:`~qudata.errors.InputError`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from qudata.errors import InputError
from qudata.io.input_stream import InputStream
from qudata.io.record import BOM, RawRecord
from qudata.io.sources import Source

__all__ = ["MAX_DEPTH", "read_json"]


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


def read_json(source: Source, stream: InputStream) -> Iterator[RawRecord]:
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
        ) from exc


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
