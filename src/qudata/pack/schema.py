"""One schema per output, learnt before the first record is written.

Arrow-based readers (``datasets``, pyarrow, pandas' pyarrow engine) take one type per
column, inferred from the first block of a file. A key that is absent from some rows
makes ``datasets`` fall back to its ``Json`` feature (which re-encodes floats), and a
key whose type changes fails the load. So a first pass observes every document's
metadata (and the keys of its messages), and the writer then gives every record the
same keys, in the schema's order, ``null`` where a document has none.

Types are JSON types, with numbers refined for Arrow:

* integers only: ``integer`` (``int64``); an integer outside int64 makes the key a
  string key (decimal text, exact; counted ``metadata_int_out_of_range``);
* floats, or floats and integers up to 2**53 in magnitude: ``float`` (``float64``;
  the integers are written as floats, exactly, counted ``metadata_int_as_float``);
  floats and a larger integer: a string key (counted ``metadata_number_as_string``);
* any other mix (a string and a number, an object and a list, ...): a string key,
  the other values as their JSON text (lossless), each counted
  ``metadata_type_conflict``.

Objects are structs (every field on every row), lists hold one element type. An
object that never has a field is written as ``null`` (``metadata_empty_object``):
Arrow has no struct without fields. Schemas merge (``a.merge(b)``: ``a``'s first-seen
types win, ``b``'s new keys come after ``a``'s) and round-trip through
:meth:`ValueSchema.to_json`, so partitions can learn them separately.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from qudata.models import Document

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MESSAGE_KEYS",
    "MetadataSchema",
    "ValueSchema",
    "document_metadata",
    "number_kind",
]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: The keys of a ChatML message, in the order they are written.
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id")
#: Known metadata keys and their fixed kinds, in the order they are written.
_KNOWN = (
    ("source", "string"),
    ("quality_score", "float"),
    ("topics", "strings"),
    ("title", "string"),
    ("language", "string"),
    ("labels", "strings"),
    ("author", "string"),
    ("domain", "string"),
    ("entities", "objects"),
)
_EXACT_FLOAT_INT = 2**53


def number_kind(value: int | float) -> str:
    """``float``, ``integer`` (within int64), ``wide`` (beyond 2**53) or ``big`` (beyond int64)."""
    if isinstance(value, float):
        return "float"
    if not INT64_MIN <= value <= INT64_MAX:
        return "big"
    return "wide" if abs(value) > _EXACT_FLOAT_INT else "integer"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"  # written as its JSON text


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
        dtypes = {"integer": "int64", "float": "float64", "boolean": "bool"}
        return {"dtype": dtypes.get(kind, "null" if kind == "null" else "string")}

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
    return orjson.dumps(value, default=str).decode()


def _finite(value: Any, warnings: Counter[str]) -> Any:
    """``value`` with every NaN or infinity replaced by ``None`` (JSON has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        warnings["metadata_non_finite"] += 1
        return None
    if isinstance(value, list | tuple):
        return [_finite(v, warnings) for v in value]
    if isinstance(value, dict):
        return {str(k): _finite(v, warnings) for k, v in value.items()}
    return value


def document_metadata(doc: Document, warnings: Counter[str]) -> dict[str, Any]:
    """A document's output metadata before it meets the schema: the known keys (fixed
    types; entities as objects), then its other keys; NaN and infinities as ``null``."""
    meta = doc.metadata
    out: dict[str, Any] = {
        "source": meta.get("source"),
        "quality_score": doc.quality_score,
        "topics": list(meta.get("topics") or []),
        "title": meta.get("title"),
        "language": meta.get("language"),
        "labels": list(doc.labels),
        "author": meta.get("author"),
        "domain": meta.get("domain"),
        "entities": [
            _finite(e, warnings) if isinstance(e, dict) else {"text": str(e)}
            for e in meta.get("entities") or []
        ],
    }
    for key, value in meta.items():
        if key not in out:
            out[str(key)] = _finite(value, warnings)
    return out


def _fixed(kind: str) -> ValueSchema:
    if kind in ("strings", "objects"):
        node = ValueSchema("array")
        node.items = ValueSchema("string" if kind == "strings" else "object")
        return node
    if kind == "float":
        node = ValueSchema("number")
        node.numbers.add("float")
        return node
    return ValueSchema(kind)


class MetadataSchema:
    """The schema of one output's ``metadata`` and ``messages``, learnt from documents.

    Known keys come first with their fixed types, then every other key in the order
    first seen. Messages have their keys in :data:`MESSAGE_KEYS` order, then others.

    Example::

        schema = MetadataSchema()
        for doc in documents:          # the first pass
            schema.observe(doc)
        writer = MetadataWriter(warnings, schema=schema)   # every record: the same keys
    """

    def __init__(self) -> None:
        self.metadata = ValueSchema("object")
        for key, kind in _KNOWN:
            self.metadata.fields[key] = _fixed(kind)
        self.messages = ValueSchema("array")
        self.messages.items = ValueSchema("object")
        for key in ("role", "content"):
            self.messages.items.fields[key] = ValueSchema("string")

    def observe(self, doc: Document) -> None:
        """Learn one document's metadata keys and types (and its messages' keys)."""
        self.metadata.observe(document_metadata(doc, Counter()))
        if doc.messages is not None:
            self.messages.observe(doc.messages)

    def add(self, key: str, values: Iterable[Any]) -> None:
        """Declare a key the run adds after the first pass (``chars``, ``tokens``, ...)."""
        node = self.metadata.field(key)
        for value in values:
            node.observe(value)

    def message_schema(self, keys: Iterable[str] | None = None) -> ValueSchema:
        """The schema of one message: :data:`MESSAGE_KEYS` first, then other keys seen
        (only ``keys``, when given)."""
        seen = self.messages.items or ValueSchema("object")
        wanted = list(keys) if keys is not None else list(seen.fields)
        order = [k for k in MESSAGE_KEYS if k in seen.fields and k in wanted]
        order += [k for k in wanted if k in seen.fields and k not in MESSAGE_KEYS]
        node = ValueSchema("object")
        node.fields = {k: seen.fields[k] for k in order}
        return node

    def merge(self, other: MetadataSchema) -> MetadataSchema:
        """Add what ``other`` learnt (``self`` came first). Returns ``self``."""
        self.metadata.merge(other.metadata)
        self.messages.merge(other.messages)
        return self

    def to_json(self) -> dict[str, Any]:
        return {"metadata": self.metadata.to_json(), "messages": self.messages.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetadataSchema:
        schema = cls()
        schema.metadata = ValueSchema.from_json(data["metadata"])
        schema.messages = ValueSchema.from_json(data["messages"])
        return schema
