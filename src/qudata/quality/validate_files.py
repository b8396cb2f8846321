"""The files ``qudata validate`` reads: every line of any codec (.gz, .zst), every item
of a JSON array, every Parquet row, or the whole text.

Nothing is sampled and nothing stops at the first problem: each problem carries
its line (the row number in Parquet). Lines that are not UTF-8 or not JSON are
problems too; NaN and Infinity are parsed (with :mod:`json`, which accepts them)
so they can be reported as ``non_finite_number``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from qudata.errors import InputError, MissingExtraError
from qudata.io.compression import open_for_reading
from qudata.io.input_stream import open_input
from qudata.io.lines import DEFAULT_MAX_LINE_BYTES, LongLine
from qudata.quality.problems import FileValidation, Problem, make_problem

__all__ = ["json_records", "parquet_records", "read_text"]


def _unreadable(line: int, exc: BaseException | str) -> Problem:
    return make_problem("unreadable", "$", f"cannot read on: {exc}", line)


def _lines(path: str) -> Iterator[tuple[int, bytes | Problem]]:
    """Numbered raw lines of a (possibly compressed) file; a read error ends them. A line
    over the input line limit is a problem, found without holding it whole."""
    try:
        stream = open_input(path)
    except OSError as exc:
        raise InputError(
            f"cannot open: {exc.strerror or exc}", source=path, reason="unreadable"
        ) from exc
    number = 0
    with stream:
        lines = stream.lines(DEFAULT_MAX_LINE_BYTES)
        while True:
            try:
                raw = next(lines, None)
            except InputError as exc:  # a truncated or corrupt .gz / .zst, an I/O error
                yield number + 1, _unreadable(number + 1, exc.detail)
                return
            if raw is None:
                return
            number += 1
            if isinstance(raw, LongLine):
                detail = raw.describe(DEFAULT_MAX_LINE_BYTES)
                yield number, make_problem("line_too_long", "$", detail, number)
                if raw.binary:
                    return
                continue
            yield number, raw


def _json_array(path: str) -> list[Any] | None:
    """The items of a JSON array file, or ``None`` when the file is not one (JSON Lines).

    Told from the content, not the name: the first non-blank byte is ``[`` and the
    whole text parses as one array. The array is read whole.
    """
    try:
        with open_for_reading(path) as stream:
            head = stream.read(4096)
            if not head.lstrip().startswith(b"["):
                return None
            data = head + stream.read()
    except Exception:  # unreadable: the line reader reports where
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(data.decode("utf-8"))  # accepts NaN, Infinity
        except (ValueError, RecursionError):
            return None
    return value if isinstance(value, list) else None


def json_records(path: str) -> Iterator[tuple[int, Any, Problem | None]]:
    """``(line, record, None)`` for each JSON line, ``(line, None, problem)`` otherwise.
    For a JSON array file, ``line`` is the 1-based item number."""
    items = _json_array(path)
    if items is not None:
        for number, item in enumerate(items, 1):
            yield number, item, None
        return
    for number, raw in _lines(path):
        if not isinstance(raw, bytes):
            yield number, None, raw
            continue
        if not raw.strip():
            yield number, None, make_problem("blank_line", "$", "a blank line", number)
            continue
        try:
            yield number, orjson.loads(raw), None
            continue
        except orjson.JSONDecodeError:
            pass
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (
                number,
                None,
                make_problem("invalid_utf8", "$", f"invalid UTF-8 at byte {exc.start}", number),
            )
            continue
        try:
            yield number, json.loads(text), None  # accepts NaN, Infinity, lone surrogates
        except (ValueError, RecursionError) as exc:
            yield number, None, make_problem("invalid_json", "$", str(exc), number)


def parquet_records(
    path: str, as_record: Callable[[dict[str, Any]], Any]
) -> Iterator[tuple[int, Any, Problem | None]]:
    """Parquet rows as records (``as_record``: what a row stands for, see
    :meth:`~qudata.quality.problems.FileRules.parquet_row`)."""
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:
        raise MissingExtraError("parquet", "pyarrow", feature="Parquet validation") from exc
    number = 0
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
        for batch in batches:
            for row in batch.to_pylist():
                number += 1
                yield number, as_record(row), None
    except (OSError, ValueError) as exc:  # pyarrow's ArrowIOError / ArrowInvalid
        yield number + 1, None, _unreadable(number + 1, exc)


def read_text(path: str, result: FileValidation) -> str:
    """The decoded text; lines that are not UTF-8 become problems (and U+FFFD)."""
    chunks: list[bytes] = []
    for _, raw in _lines(path):
        if isinstance(raw, bytes):
            chunks.append(raw)
        else:
            result.problems.append(raw)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for number, raw_line in enumerate(data.split(b"\n"), 1):
        try:
            raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.problems.append(
                make_problem("invalid_utf8", "$", f"invalid UTF-8 at byte {exc.start}", number)
            )
    return data.decode("utf-8", "replace")
