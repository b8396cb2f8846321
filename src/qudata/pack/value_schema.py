"""The type of one value position (a key, a nested field, list elements), learnt from
values and used to write them with one Arrow type (see :mod:`qudata.pack.schema`)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import orjson

from qudata.models import json_kind

__all__ = ["INT64_MAX", "INT64_MIN", "ValueSchema", "number_kind"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_EXACT_FLOAT_INT = 2**53


def number_kind(value: int | float) -> str:
    """``float``, ``integer`` (within int64), ``wide`` (beyond 2**53) or ``big`` (beyond int64)."""
    if isinstance(value, float):
        return "float"
    if not INT64_MIN <= value <= INT64_MAX:
        return "big"
    return "wide" if abs(value) > _EXACT_FLOAT_INT else "integer"


_JSON_KINDS = frozenset(("null", "boolean", "number", "string", "array", "object"))


def _kind(value: Any) -> str:
    """The JSON type of ``value``; any other value is written as its JSON text."""
    kind = json_kind(value)
    return kind if kind in _JSON_KINDS else "string"


class ValueSchema:
    """The JSON type of one value position (a key, a nested field, list elements).

    Example::

        schema = ValueSchema()
        schema.observe({"a": 1, "b": [0.5]})
        schema.observe({"c": "x"})
        schema.conform({"c": "y"}, Counter())   # {'a': None, 'b': None, 'c': 'y'}
    """

    __slots__ = ("fields", "items", "kind", "mixed", "numbers")

    def __init__(self, kind: str = "null") -> None:
        self.kind = kind  # the JSON kind first seen (``null`` until a value is seen)
        self.numbers: set[str] = set()  # number_kind()s seen, for number keys
        self.mixed = False  # values of another kind seen too: written as strings
        self.fields: dict[str, ValueSchema] = {}  # objects, in first-seen order
        self.items: ValueSchema | None = None  # arrays

    # -- learning -------------------------------------------------------------------
    def observe(self, value: Any, *, promote: bool = True) -> None:
        """Learn from one value (its kind, nested fields, list elements).

        ``promote``: a value of another kind makes this a string position (a schema
        learnt before writing). Without it the first kind stays (a schema learnt while
        writing, which cannot change what it already wrote): the value is converted.
        """
        kind = _kind(value)
        if kind == "null":
            return
        if self.kind == "null":
            self.kind = kind
        if kind != self.kind:
            self.mixed = self.mixed or promote  # converted to a string when written
            return
        if kind == "number":
            self.numbers.add(number_kind(value))
        elif kind == "object":
            for key, child in value.items():
                self.field(str(key)).observe(child, promote=promote)
        elif kind == "array":
            items = self.items if self.items is not None else ValueSchema()
            self.items = items
            for element in value:
                items.observe(element, promote=promote)

    def field(self, key: str) -> ValueSchema:
        """The schema of field ``key`` of an object (added, after the others, if new)."""
        if key not in self.fields:
            self.fields[key] = ValueSchema()
        return self.fields[key]

    def merge(self, other: ValueSchema) -> ValueSchema:
        """Add what ``other`` learnt (``self`` came first: its kinds win). Returns ``self``."""
        if other.kind == "null":
            return self
        if self.kind == "null":
            self.kind = other.kind
        if other.kind != self.kind or other.mixed:
            self.mixed = True
        if other.kind != self.kind:
            return self
        self.numbers |= other.numbers
        for key, child in other.fields.items():
            self.field(key).merge(child)
        if other.items is not None:
            self.items = (self.items or ValueSchema()).merge(other.items)
        return self

    # -- the type it writes ---------------------------------------------------------
    @property
    def type(self) -> str:
        """What is written: null, boolean, integer, float, string, array or object."""
        if self.mixed:
            return "string"
        if self.kind == "number":
            nums = self.numbers
            if "big" in nums or ("float" in nums and "wide" in nums):
                return "string"
            return "float" if "float" in nums else "integer"
        if self.kind == "object" and not self.fields:
            return "null"
        return self.kind

    def feature(self) -> dict[str, Any]:
        """The ``datasets`` feature (card YAML) of this position: exact, never ``json``."""
        kind = self.type
        if kind == "object":
            return {"struct": [{"name": k, **v.feature()} for k, v in self.fields.items()]}
        if kind == "array":
            items = self.items if self.items is not None else ValueSchema()
            inner = items.feature()
            return {"list": inner["struct"]} if "struct" in inner else {"list": inner}
        # a position only ever null is declared a string: null fits any type, and
        # pyarrow's JSON reader mishandles lists of its null type
        dtypes = {"integer": "int64", "float": "float64", "boolean": "bool"}
        return {"dtype": dtypes.get(kind, "string")}

    # -- writing --------------------------------------------------------------------
    def conform(self, value: Any, warnings: Counter[str]) -> Any:
        """``value`` in this schema's type: every field present, conflicts converted."""
        if value is None:
            return None
        kind = self.type
        if kind == "object":
            if not isinstance(value, dict):  # learnt while writing: the first kind stays
                warnings["metadata_type_conflict"] += 1
                return None
            return {k: s.conform(value.get(k), warnings) for k, s in self.fields.items()}
        if kind == "array":
            if not isinstance(value, list | tuple):  # learnt while writing: the first kind stays
                warnings["metadata_type_conflict"] += 1
                value = [value]
            items = self.items if self.items is not None else ValueSchema()
            return [items.conform(v, warnings) for v in value]
        if kind == "null":  # a never-filled object, or a value the schema has not seen
            warnings["metadata_empty_object" if value == {} else "metadata_unseen_value"] += 1
            return None
        return _scalar(value, kind, self, warnings)

    # -- serialisation --------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (``from_json`` reads it back)."""
        data: dict[str, Any] = {"kind": self.kind}
        if self.mixed:
            data["mixed"] = True
        if self.numbers:
            data["numbers"] = sorted(self.numbers)
        if self.fields:
            data["fields"] = {k: v.to_json() for k, v in self.fields.items()}
        if self.items is not None:
            data["items"] = self.items.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ValueSchema:
        node = cls(str(data["kind"]))
        node.numbers = set(data.get("numbers", ()))
        node.mixed = bool(data.get("mixed", False))
        node.fields = {k: cls.from_json(v) for k, v in data.get("fields", {}).items()}
        node.items = cls.from_json(data["items"]) if "items" in data else None
        return node

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValueSchema) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ValueSchema({self.to_json()!r})"


def _scalar(value: Any, kind: str, node: ValueSchema, warnings: Counter[str]) -> Any:
    """A scalar in the written type ``kind``."""
    actual = _kind(value)
    if kind == "string":
        if isinstance(value, str):
            return value
        if actual == "number" and node.kind == "number" and not node.mixed:
            big = number_kind(value) == "big"
            warnings["metadata_int_out_of_range" if big else "metadata_number_as_string"] += 1
            return orjson.dumps(value).decode() if isinstance(value, float) else str(value)
        warnings["metadata_type_conflict"] += 1
        return _text(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "float" and actual == "number":
        if isinstance(value, float):
            return value
        if abs(value) <= _EXACT_FLOAT_INT:
            warnings["metadata_int_as_float"] += 1
            return float(value)
    if kind == "integer" and isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
        return value
    # a schema learnt while writing keeps the first kind: a numeric or true/false string
    # is parsed, anything else has no form in that kind
    warnings["metadata_type_conflict"] += 1
    if kind == "boolean":
        text = value.lower() if isinstance(value, str) else ""
        return text == "true" if text in ("true", "false") else None
    number = _parse_number(value) if actual == "string" else value if actual == "number" else None
    if kind == "float" and isinstance(number, int | float):
        return float(number) if abs(number) <= _EXACT_FLOAT_INT else None
    if kind == "integer" and isinstance(number, int | float):
        integral = float(number).is_integer() and INT64_MIN <= number <= INT64_MAX
        return int(number) if integral else None
    return None


def _parse_number(value: str) -> int | float | None:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # an integer beyond 64 bits inside: orjson refuses it
        import json

        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
