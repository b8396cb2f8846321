"""Parquet: one typed row per document, schema declared before the first row.

Known metadata keys are typed columns; the document's other metadata is one
JSON string column (``metadata_json``), and a conversation is a list of
message structs (``tool_calls`` as a JSON string), its tool schemas ``tools_json``;
a preference pair keeps its chosen conversation in ``messages`` (the first
``prompt_turns`` are the prompt) and its rejected answer in ``rejected``, so nothing
is dropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import orjson

from qudata.account import Drop, FormatStats
from qudata.io.parquet import ParquetShardWriter, import_pyarrow
from qudata.models import KNOWN_METADATA_KEYS, Document
from qudata.pack.base import Formatter, Record
from qudata.pack.chatml import chatml_options
from qudata.pack.jsonl_rules import validate_jsonl
from qudata.pack.markup import MessageCleaner, conversation_guard
from qudata.sections import Section

__all__ = ["ParquetFormatter", "ParquetOptions", "parquet_schema"]


class ParquetOptions(Section):
    """``pack.parquet``: typed columns; no options yet."""


def parquet_schema() -> Any:
    """The fixed schema of qudata's Parquet output."""
    pa = import_pyarrow()
    text = pa.string()
    message = pa.struct(
        [
            ("role", text),
            ("content", text),
            ("reasoning_content", text),
            ("name", text),
            ("weight", pa.float64()),
            ("tool_calls", text),
            ("tool_call_id", text),
        ]
    )
    return pa.schema(
        [
            ("id", text),
            ("text", text),
            ("labels", pa.list_(text)),
            ("quality_score", pa.float64()),
            ("source", text),
            ("title", text),
            ("language", text),
            ("topics", pa.list_(text)),
            ("author", text),
            ("domain", text),
            ("entities_json", text),
            ("messages", pa.list_(message)),
            ("metadata_json", text),
            ("tools_json", text),
            ("parallel_tool_calls", pa.bool_()),
            ("rejected", pa.list_(message)),
            ("prompt_turns", pa.int64()),
            ("images", pa.list_(text)),
            ("videos", pa.list_(text)),
            ("audios", pa.list_(text)),
        ]
    )


def _json(value: Any, option: int = 0) -> str | None:
    """JSON text; an integer beyond 64 bits (which orjson refuses) is written exactly."""
    if value is None:
        return None
    try:
        return orjson.dumps(value, option=option).decode()
    except TypeError:
        import json

        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _messages(messages: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if messages is None:
        return None
    return [
        {
            "role": m.get("role"),
            "content": m.get("content"),
            "reasoning_content": m.get("reasoning_content"),
            "name": m.get("name"),
            "weight": float(m["weight"]) if isinstance(m.get("weight"), int | float) else None,
            "tool_calls": _json(m.get("tool_calls")),
            "tool_call_id": m.get("tool_call_id"),
        }
        for m in messages
    ]


class ParquetFormatter(Formatter[ParquetOptions]):
    """Typed Parquet rows for analysis and Arrow-based training loaders.

    Example::

        ParquetFormatter().export_to_file(docs, "docs.parquet")
    """

    name: ClassVar[str] = "parquet"
    extension: ClassVar[str] = ".parquet"
    card: ClassVar[str | None] = "folder"
    options_model: ClassVar[type[ParquetOptions]] = ParquetOptions

    def format_document(
        self, doc: Document, opts: ParquetOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        meta = doc.metadata
        rest = {k: v for k, v in meta.items() if k not in KNOWN_METADATA_KEYS}
        messages = None
        if doc.messages is not None:
            cleaned = self._clean_messages(doc.messages, state)
            if isinstance(cleaned, Drop):
                return cleaned
            messages = _messages(cleaned)
        try:
            entities = _json(meta.get("entities") or None)
            rest_json = _json(rest, orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:  # Decimal, a pandas Timestamp, bytes... from Parquet input
            return Drop("not_representable", f"metadata: {exc} (the column metadata_json is JSON)")
        return [
            {
                "id": doc.id,
                "text": doc.text,
                "labels": list(doc.labels),
                "quality_score": doc.quality_score,
                "source": meta.get("source"),
                "title": meta.get("title"),
                "language": meta.get("language"),
                "topics": list(meta.get("topics") or []),
                "author": meta.get("author"),
                "domain": meta.get("domain"),
                "entities_json": entities,
                "messages": messages,
                "metadata_json": rest_json,
                "tools_json": _json(doc.tools),
                "parallel_tool_calls": doc.parallel_tool_calls,
                "rejected": _messages(doc.rejected),
                **{kind: (doc.media or {}).get(kind) for kind in ("images", "videos", "audios")},
                "prompt_turns": doc.prompt_turns,
            }
        ]

    def _clean_messages(self, messages: list[Any], state: dict[str, Any]) -> list[Any] | Drop:
        """``messages`` under ``pack.chatml.markup`` (as in ChatML), or the reason a message
        cannot be a row of the fixed message struct (text columns hold text only)."""
        for number, m in enumerate(messages, 1):
            for key in ("role", "content", "reasoning_content", "name", "tool_call_id"):
                value = m.get(key)
                if value is not None and not isinstance(value, str):
                    return Drop(
                        "not_representable",
                        f"message {number}: {key} is a {type(value).__name__}; the Parquet "
                        f"column messages.{key} holds text",
                    )
        if "cleaner" not in state:
            state["cleaner"] = MessageCleaner(conversation_guard(chatml_options(self.config)))
        cleaner: MessageCleaner = state["cleaner"]
        cleaned = cleaner.clean_counted(messages, self.stats.events)
        if cleaned is None:
            return Drop("markup", "a message holds chat markup (pack.chatml.markup: drop)")
        return cleaned

    def validate(self, record: Record, state: dict[str, Any]) -> list[str]:
        """String hygiene: Arrow writes whole batches, so a bad string must not reach it."""
        return [p.code for p in validate_jsonl(record)]

    def arrow_schema(self) -> Any:
        return parquet_schema()

    def writer(self, directory: Path, split: str, **options: Any) -> Any:
        return ParquetShardWriter(directory, split, schema=parquet_schema(), **options)

    def export_to_file(
        self,
        documents: Iterable[Any],
        output_path: str | os.PathLike[str],
        config: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> FormatStats:
        """Write one Parquet file atomically."""
        import pyarrow.parquet as pq

        pa = import_pyarrow()
        target = Path(output_path)
        temp = target.with_name(f".{target.name}.partial-{os.getpid()}")
        schema = parquet_schema()
        try:
            with pq.ParquetWriter(temp, schema) as writer:
                rows: list[dict[str, Any]] = []
                for record in self.iter_records(documents, config=config, **options):
                    rows.append(record)
                    if len(rows) >= 2048:
                        writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                        rows = []
                if rows:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        self.stats.bytes = target.stat().st_size
        return self.stats
