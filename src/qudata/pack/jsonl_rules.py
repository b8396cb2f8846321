"""The rules of a general JSON Lines record, and of a file's rows together (one schema).

>>> [p.code for p in validate_jsonl({"text": float("nan")})]
['non_finite_number']
"""

from __future__ import annotations

from typing import Any

from qudata.models import json_kind
from qudata.quality.problems import (
    FileRules,
    FileValidation,
    Problem,
    add_hints,
    hygiene,
    make_problem,
)

__all__ = ["JSONLRules", "JSONLSchemaTracker", "validate_jsonl"]


# the problem codes of a file of JSON Lines records, with their hints
add_hints(
    {
        "missing_key": "every row should have the same keys (write null for a missing value)",
        "key_missing_on_earlier_rows": "every row should have the same keys (write null for a "
        "missing value)",
        "type_changed": "give a key one JSON type in every row (or null); Arrow-based loaders fail "
        "otherwise",
    }
)


def validate_jsonl(record: Any) -> list[Problem]:
    """The rules of one general JSONL record: an object, clean strings, finite numbers."""
    if not isinstance(record, dict):
        return [make_problem("not_an_object", "$", f"the record is {json_kind(record)}")]
    return hygiene(record)


class JSONLSchemaTracker:
    """Fed the records of one file in order, reports keys that come and go or change type.

    Top-level keys must be on every row (``missing_key``; keys first seen late are
    summed up by :meth:`finish` as ``key_missing_on_earlier_rows``). A key keeps
    the JSON type it first had, at the top and inside ``metadata`` (``type_changed``);
    null fits any type and integers and floats are both numbers.
    """

    def __init__(self) -> None:
        self.rows = 0
        self._first: dict[str, tuple[int, int | None]] = {}  # key -> (row index, line)
        self._kinds: dict[str, str] = {}

    def check(self, record: Any, *, line: int | None = None) -> list[Problem]:
        """The schema problems of the next record (a non-object is skipped)."""
        if not isinstance(record, dict):
            return []
        out = [
            make_problem("missing_key", key, f"no key {key!r}, which earlier rows have", line)
            for key in self._first
            if key not in record
        ]
        for key, value in record.items():
            self._first.setdefault(key, (self.rows, line))
            self._kind(key, value, out, line)
        meta = record.get("metadata")
        if isinstance(meta, dict):
            for key, value in meta.items():
                self._kind(f"metadata.{key}", value, out, line)
        self.rows += 1
        return out

    def _kind(self, path: str, value: Any, out: list[Problem], line: int | None) -> None:
        kind = json_kind(value)
        if kind == "null":
            return
        first = self._kinds.setdefault(path, kind)
        if first != kind:
            out.append(make_problem("type_changed", path, f"was {first}, now {kind}", line))

    def finish(self) -> list[Problem]:
        """One ``key_missing_on_earlier_rows`` per key that the first rows lack."""
        return [
            make_problem(
                "key_missing_on_earlier_rows",
                key,
                f"key {key!r} first appears on row {row + 1}; the {row} rows before lack it",
                line,
            )
            for key, (row, line) in self._first.items()
            if row > 0
        ]


class JSONLRules(FileRules):
    """``qudata validate --format jsonl``: each record's rules, and one schema for all."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.tracker = JSONLSchemaTracker()

    def check(self, record: Any, line: int, result: FileValidation) -> list[Problem]:
        return validate_jsonl(record) + self.tracker.check(record, line=line)

    def finish(self, result: FileValidation) -> None:
        result.problems.extend(self.tracker.finish())
        result.problems.sort(key=lambda p: p.line or 0)
