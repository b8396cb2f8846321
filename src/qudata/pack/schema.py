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
:meth:`~qudata.pack.value_schema.ValueSchema.to_json`, so partitions can learn them separately.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from qudata.models import Document
from qudata.pack.value_schema import INT64_MAX, INT64_MIN, ValueSchema, number_kind

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MESSAGE_KEYS",
    "MetadataSchema",
    "ValueSchema",
    "document_metadata",
    "number_kind",
]

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
