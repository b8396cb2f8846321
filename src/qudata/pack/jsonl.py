"""JSONL: one JSON object per line with exactly the requested fields, in that order."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from qudata.account import Drop
from qudata.config import QualityConfig
from qudata.models import KNOWN_METADATA_KEYS, Document
from qudata.normalize.parts import MEDIA_KINDS
from qudata.normalize.problems import ends_on_user
from qudata.pack.base import Formatter, Record
from qudata.pack.chatml import chatml_options
from qudata.pack.jsonl_rules import JSONLRules, JSONLSchemaTracker
from qudata.pack.markup import MessageCleaner, conversation_guard
from qudata.pack.metadata import MetadataWriter
from qudata.quality.checks import Check
from qudata.quality.gate import QualityGate
from qudata.quality.problems import FileRules
from qudata.sections import Section

__all__ = ["JSONLFormatter", "JSONLOptions"]


class JSONLOptions(Section):
    """``pack.jsonl``: one JSON object per line with exactly ``fields``."""

    fields: list[str] = Field(
        default_factory=lambda: ["text", "labels", "metadata"],
        min_length=1,
        description="output keys, in order",
    )
    field_mapping: dict[str, str] = Field(
        default_factory=dict, description="renames of output keys"
    )
    filter_low_quality: bool = Field(
        default=False,
        description="drop documents under `min_quality_score` from the JSONL output",
    )
    min_quality_score: float = Field(
        default=0.7, ge=0.0, le=1.0, description="threshold of that filter"
    )

    @field_validator("fields")
    @classmethod
    def _unique_fields(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("fields must not repeat a name")
        return value


class JSONLFormatter(Formatter[JSONLOptions]):
    """JSON Lines for general LLM training; every line has the same keys.

    Fields: ``text``, ``id``, ``labels``, ``metadata``, ``quality_score``,
    ``messages``, ``tools``, any known metadata key (``source``, ``title``, ``topics``, ...)
    or any other metadata key (``null`` where a document lacks it).
    ``field_mapping`` renames output keys.

    Example::

        formatter = JSONLFormatter()
        formatter.export_to_file(documents=docs, output_path="training_data.jsonl",
                                 fields=["text", "labels", "metadata"])
    """

    name: ClassVar[str] = "jsonl"
    extension: ClassVar[str] = ".jsonl"
    card: ClassVar[str | None] = "root"
    learns_schema: ClassVar[bool] = True
    options_model: ClassVar[type[JSONLOptions]] = JSONLOptions
    file_rules: ClassVar[type[FileRules] | None] = JSONLRules

    @classmethod
    def surveys_metadata(cls, opts: Any) -> bool:
        """Only when ``fields`` holds more than the plain keys."""
        return not set(opts.fields) <= {"text", "id", "labels", "quality_score"}

    def checks(self, opts: JSONLOptions) -> list[Check]:
        """``filter_low_quality``: the quality gate again, at ``min_quality_score``, for
        this format only (documents without a score are kept)."""
        if not opts.filter_low_quality:
            return []
        return [QualityGate(QualityConfig(min_quality_score=opts.min_quality_score))]

    def format_document(
        self, doc: Document, opts: JSONLOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        if ends_on_user(doc):
            return Drop("ends_on_user", "the conversation ends on a user turn")
        if "metadata" not in state:
            state["metadata"] = MetadataWriter(self.stats.warnings, schema=self.schema)
        meta = state["metadata"].build(doc)
        rename = opts.field_mapping
        record = {rename.get(f, f): self._field(f, doc, meta) for f in opts.fields}
        if doc.messages is not None and "messages" in opts.fields:
            messages = self._clean_messages(doc.messages, state)
            if messages is None:
                return Drop("markup", "a message holds chat markup (pack.chatml.markup: drop)")
            # the output's schema: every message has the same keys (null where absent)
            record[rename.get("messages", "messages")] = state["metadata"].messages(messages, None)
        return [record]

    def _clean_messages(self, messages: list[Any], state: dict[str, Any]) -> list[Any] | None:
        """``messages`` under ``pack.chatml.markup``, as in ChatML: a trainer may render them."""
        if "cleaner" not in state:
            state["cleaner"] = MessageCleaner(conversation_guard(chatml_options(self.config)))
        cleaner: MessageCleaner = state["cleaner"]
        cleaned = cleaner.clean_counted(messages, self.stats.events)
        return cleaned

    def validate(self, record: Record, state: dict[str, Any]) -> list[str]:
        tracker = state.get("schema")
        if tracker is None:
            tracker = state["schema"] = JSONLSchemaTracker()
        # string hygiene: the JSON encoder refuses lone surrogates and NaN (see output.py)
        return [p.code for p in tracker.check(record)]

    def features(self, state: dict[str, Any]) -> list[dict[str, Any]] | None:
        from qudata.pack.metadata import field_feature, message_features, metadata_features

        writer = state.get("metadata")
        out = []
        for field in self.options.fields:
            name = self.options.field_mapping.get(field, field)
            if field in ("text", "id"):
                feature: dict[str, Any] = {"dtype": "string"}
            elif field == "metadata":
                feature = {"struct": metadata_features(writer)}
            elif field == "messages":
                feature = {"list": message_features(writer, None)}
            elif field == "tools":  # JSON schemas: no fixed struct (see docs/formats.md)
                feature = {"dtype": "json"}
            elif field in MEDIA_KINDS:
                feature = {"list": {"dtype": "string"}}
            else:
                feature = field_feature(writer, field)
            out.append({"name": name, **feature})
        return out

    @staticmethod
    def _field(name: str, doc: Document, meta: dict[str, Any]) -> Any:
        if name == "text":
            return doc.text
        if name == "id":
            return doc.id
        if name == "metadata":
            return meta
        if name == "messages":
            return doc.messages
        if name == "tools":
            return doc.tools
        if name in MEDIA_KINDS:
            return (doc.media or {}).get(name)
        if name in KNOWN_METADATA_KEYS or name in meta:
            return meta.get(name)
        return None
