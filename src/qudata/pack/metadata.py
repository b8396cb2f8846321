"""Output metadata with one JSON type per key, so Arrow-based loaders never fail or coerce.

Known keys are always present with fixed types (``null`` when absent, ``topics``,
``labels`` and ``entities`` always lists). Unknown keys are kept, with the types of
the output's schema (:mod:`qudata.pack.schema`): a value whose JSON type differs
from the type that key first had is converted and counted as
``metadata_type_conflict``. Non-finite numbers become ``null``
(``metadata_non_finite``): JSON has no NaN.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from qudata.models import Document
from qudata.pack.schema import MetadataSchema, document_metadata

__all__ = [
    "KNOWN_FEATURES",
    "MetadataWriter",
    "field_feature",
    "message_features",
    "metadata_features",
]


class MetadataWriter:
    """Builds the output ``metadata`` object of documents written to one output.

    With a ``schema`` learnt before writing (:class:`~qudata.pack.schema.MetadataSchema`;
    ``qudata pack`` and the formatters' ``format_documents``/``export_to_file`` learn
    one), every record has the same keys in the same order and one type per key.
    Without one (the streaming ``iter_records``), the schema is learnt as documents
    arrive: a key's first type stays, and a key first seen later is absent from the
    earlier records.
    """

    def __init__(
        self, warnings: Counter[str] | None = None, *, schema: MetadataSchema | None = None
    ) -> None:
        self.learnt = schema is not None
        self.schema = schema if schema is not None else MetadataSchema()
        self.warnings: Counter[str] = warnings if warnings is not None else Counter()

    def build(self, doc: Document) -> dict[str, Any]:
        raw = document_metadata(doc, self.warnings)
        if not self.learnt:
            self.schema.metadata.observe(raw, promote=False)
        out: dict[str, Any] = self.schema.metadata.conform(raw, self.warnings)
        return out

    def messages(self, messages: list[dict[str, Any]], keys: Iterable[str] | None) -> list[Any]:
        """``messages`` with the keys of the learnt message schema (restricted to
        ``keys``), ``null`` where a message has none; unchanged without a schema."""
        if not self.learnt:  # learnt as they come, for the features; written as they are
            wanted = None if keys is None else set(keys)
            self.schema.messages.observe(
                [{k: v for k, v in m.items() if wanted is None or k in wanted} for m in messages],
                promote=False,
            )
            return messages
        node = self.schema.message_schema(keys)
        return [node.conform(m, self.warnings) for m in messages]


def _known_features() -> dict[str, dict[str, Any]]:
    fields = MetadataSchema().metadata.fields
    return {k: v.feature() for k, v in fields.items()}


#: Features of the known metadata keys (their types are fixed; ``entities`` is a list of
#: structs whose fields are learnt, see :func:`metadata_features`).
KNOWN_FEATURES: dict[str, dict[str, Any]] = _known_features()


def field_feature(writer: MetadataWriter | None, key: str) -> dict[str, Any]:
    """The ``datasets`` feature of one metadata key as written (``null`` if never seen)."""
    fields = writer.schema.metadata.fields if writer is not None else {}
    if key in fields:
        return fields[key].feature()
    return KNOWN_FEATURES.get(key, {"dtype": "null"})


def metadata_features(writer: MetadataWriter | None) -> list[dict[str, Any]]:
    """The ``metadata`` struct: known keys, then every other key, with its written type.

    Declared in the dataset card, so ``datasets`` does not infer the schema from the first
    file or block (a key that first appears later would not fit it). Exact: ``int64``,
    ``float64``, ``bool``, ``string``, structs and lists, never ``json``.
    """
    schema = writer.schema if writer is not None else MetadataSchema()
    feature = schema.metadata.feature()
    struct: list[dict[str, Any]] = feature.get("struct", [])
    return struct


def message_features(
    writer: MetadataWriter | None, keys: Iterable[str] | None
) -> list[dict[str, Any]]:
    """The struct of one message: the keys the output uses, with their written types."""
    schema = writer.schema if writer is not None else MetadataSchema()
    node = schema.message_schema(keys)
    if not node.fields:
        node = MetadataSchema().message_schema(["role", "content"])
    return [{"name": k, **v.feature()} for k, v in node.fields.items()]
