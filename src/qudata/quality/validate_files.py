"""Validate whole files: every line of any codec (.gz, .zst) or every Parquet row.

Nothing is sampled and nothing stops at the first problem: each problem carries
its line (the row number in Parquet). Lines that are not UTF-8 or not JSON are
problems too; NaN and Infinity are parsed (with :mod:`json`, which accepts them)
so they can be reported as ``non_finite_number``.
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from qudata.errors import ConfigError, InputError, MissingExtraError
from qudata.io.compression import open_for_reading
from qudata.io.input_stream import open_input
from qudata.io.lines import DEFAULT_MAX_LINE_BYTES, LongLine

if TYPE_CHECKING:
    from qudata.quality.validate import Problem

__all__ = ["VALIDATED_FORMATS", "FileValidation", "validate_file"]

#: The formats whose files ``qudata validate`` checks.
VALIDATED_FORMATS = ("chatml", "jsonl", "plain", "preference")
_OPTIONAL_KEYS = ("name", "weight", "tool_calls", "tool_call_id")


@dataclass(slots=True)
class FileValidation:
    """The verdict on one file: records read and every problem found (each with its line).

    ``tokens_total`` and ``max_message_tokens`` are set for ChatML when tokens are counted.
    """

    path: str
    format: str
    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    tokens_total: int | None = None
    max_message_tokens: int | None = None

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def by_code(self) -> dict[str, int]:
        """How many problems of each code, sorted by code."""
        return dict(sorted(Counter(p.code for p in self.problems).items()))


def _unreadable(line: int, exc: BaseException | str) -> Problem:
    from qudata.quality.validate import make_problem

    return make_problem("unreadable", "$", f"cannot read on: {exc}", line)


def _lines(path: str) -> Iterator[tuple[int, bytes | Problem]]:
    """Numbered raw lines of a (possibly compressed) file; a read error ends them. A line
    over the input line limit is a problem, found without holding it whole."""
    from qudata.quality.validate import make_problem

    try:
        stream = open_input(path)
    except OSError as exc:
        raise InputError(
            f"cannot open: {exc.strerror or exc}", source=path, reason="unreadable"
        ) from None
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


def _json_records(path: str) -> Iterator[tuple[int, Any, Problem | None]]:
    """``(line, record, None)`` for each JSON line, ``(line, None, problem)`` otherwise.
    For a JSON array file, ``line`` is the 1-based item number."""
    from qudata.quality.validate import make_problem

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


def _parquet_records(path: str, fmt: str) -> Iterator[tuple[int, Any, Problem | None]]:
    """Parquet rows as records; for ChatML, a null optional message key counts as absent."""
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise MissingExtraError("parquet", "pyarrow", feature="Parquet validation") from None
    number = 0
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
        for batch in batches:
            for row in batch.to_pylist():
                number += 1
                messages = row.get("messages")
                if fmt == "chatml" and isinstance(messages, list):
                    row["messages"] = [
                        {k: v for k, v in m.items() if v is not None or k not in _OPTIONAL_KEYS}
                        if isinstance(m, dict)
                        else m
                        for m in messages
                    ]
                yield number, row, None
    except (OSError, ValueError) as exc:  # pyarrow's ArrowIOError / ArrowInvalid
        yield number + 1, None, _unreadable(number + 1, exc)


def _read_text(path: str, result: FileValidation) -> str:
    """The decoded text; lines that are not UTF-8 become problems (and U+FFFD)."""
    from qudata.quality.validate import make_problem

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


def _check_regular(path: str) -> None:
    """Only a regular file is read: a FIFO or a device would block or never end."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InputError(
            f"cannot open: {exc.strerror or exc}", source=path, reason="unreadable"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise InputError(
            f"{kind} (a FIFO, socket or device is never read): give a file",
            source=path,
            reason="not_a_regular_file",
        )


def _markup(record: Any) -> list[Problem]:
    """Message contents that hold ChatML markup (what ``qudata pack`` escapes)."""
    from qudata.pack.markup import CHATML_MARKERS
    from qudata.quality.validate import make_problem

    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list):
        return []
    out = []
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and "<|" in content:
            found = [m for m in CHATML_MARKERS if m in content]
            if found:
                out.append(
                    make_problem(
                        "chat_markup", f"messages[{i}].content", f"holds {', '.join(found)}"
                    )
                )
    return out


def validate_file(
    path: str,
    fmt: str,
    *,
    max_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
    separator: str = "\n---\n",
    headers: bool | None = None,
) -> FileValidation:
    """Check every record of ``path`` against the rules of ``fmt`` (chatml, jsonl, plain).

    ``max_tokens`` and ``count_tokens`` apply to ChatML; ``separator`` and
    ``headers`` to plain text. Parquet files (``.parquet``) are read row by row.
    """
    from qudata.quality.validate import (
        JSONLSchemaTracker,
        check_chatml,
        check_plain_text,
        validate_jsonl,
        validate_preference,
    )

    if fmt not in VALIDATED_FORMATS:
        raise ConfigError(f"unknown format {fmt!r} (choose from: {', '.join(VALIDATED_FORMATS)})")
    _check_regular(path)
    result = FileValidation(path=path, format=fmt)
    if fmt == "plain":
        if path.endswith(".parquet"):
            raise InputError(
                "Parquet holds records: validate it as chatml or jsonl",
                source=path,
                reason="wrong_format",
            )
        text = _read_text(path, result)
        problems, result.records = check_plain_text(text, separator, headers=headers)
        result.problems.extend(problems)
        result.problems.sort(key=lambda p: p.line or 0)
        return result
    records = _parquet_records(path, fmt) if path.endswith(".parquet") else _json_records(path)
    tracker = JSONLSchemaTracker() if fmt == "jsonl" else None
    if count_tokens is not None and fmt == "chatml":
        result.tokens_total = result.max_message_tokens = 0
    for line, record, problem in records:
        if problem is not None:
            result.problems.append(problem)
            if problem.code in ("blank_line", "unreadable"):
                continue
        result.records += 1
        if problem is not None:
            continue
        if tracker is not None:
            found = validate_jsonl(record) + tracker.check(record, line=line)
        elif fmt == "preference":
            found = validate_preference(record)
        else:
            found, counts = check_chatml(record, max_tokens, count_tokens)
            found.extend(_markup(record))
            if counts and result.tokens_total is not None:
                result.tokens_total += sum(counts)
                result.max_message_tokens = max(result.max_message_tokens or 0, *counts)
        result.problems.extend(replace(p, line=line) for p in found)
    if tracker is not None:
        result.problems.extend(tracker.finish())
        result.problems.sort(key=lambda p: p.line or 0)
    return result
