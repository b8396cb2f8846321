"""The text document, and the normaliser that turns any input into a :class:`Document`.

Documents arrive as :class:`Document` objects, plain dicts (JSONL rows), or
objects of a document-processing pipeline (``content``, ``source_path`` and a
``metadata`` object). :class:`DocumentNormalizer` turns all of them into
:class:`Document`: a conversation in one of the shapes of
:mod:`qudata.normalize.shapes`, else a text document (``text``, or a pipeline's
``content``); every other key goes to ``metadata``. It raises
:class:`~qudata.errors.InputError` saying which field is wrong and what was expected.

    >>> normalize = DocumentNormalizer()
    >>> doc = normalize({"text": "Hello.", "source": "a.pdf", "topics": "AI"})
    >>> doc.metadata["source"], doc.topics
    ('a.pdf', ['AI'])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import xxhash

from qudata.errors import InputError
from qudata.models import KNOWN_METADATA_KEYS, Document, json_kind
from qudata.normalize.account import FieldAccount
from qudata.normalize.columns import Shape
from qudata.normalize.parts import MEDIA_KINDS, PLACEHOLDERS
from qudata.normalize.shapes import read_conversation
from qudata.normalize.turns import ConversationError, message_text

__all__ = ["DocumentNormalizer"]

_LIST_KEYS = frozenset({"topics", "labels", "entities"})
_STRING_KEYS = frozenset({"source", "title", "language", "author", "domain"})
_RESERVED = frozenset({"messages", "conversations", "metadata"})
_KNOWN = frozenset(KNOWN_METADATA_KEYS)
#: Keys of a KTO label (``kto_tag`` is what ``input.columns.kto_tag`` renames to).
KTO_KEYS = ("kto_tag", "label")


class DocumentNormalizer:
    """Turn dicts, pipeline objects and :class:`Document` into :class:`Document`.

    Stateful only for derived ids and the field-level account: a document without an
    id gets ``doc-<hash of its text>``; when that id was already given out, ``-2``,
    ``-3``, ... follow in input order, so ids are stable across runs of the same input.
    ``derived`` counts the ids given out per base; a partition's normaliser starts from
    the counts of the partitions before it (``derived`` given at construction).
    ``fields`` (:class:`~qudata.normalize.account.FieldAccount`) counts what became of
    every top-level key of the records read.
    """

    def __init__(
        self,
        *,
        text_key: str = "text",
        id_key: str = "id",
        shape: Shape | None = None,
        derived: dict[str, int] | None = None,
        unknown_keys: str = "carry",
    ) -> None:
        self.shape = shape or Shape()
        self.text_key = self.shape.text_column or text_key
        self.id_key = self.shape.columns.get("id", id_key)
        self.derived: dict[str, int] = dict(derived or {})
        self.unknown_keys = unknown_keys
        self.fields = FieldAccount()
        self._original = {v: k for k, v in self.shape.renames().items()}

    @classmethod
    def from_input(cls, cfg: Any, derived: dict[str, int] | None = None) -> DocumentNormalizer:
        """The normaliser of an ``input`` configuration section."""
        shape = Shape(columns=cfg.columns, tags=cfg.tags, role_map=cfg.role_map)
        return cls(
            text_key=cfg.text_key,
            id_key=cfg.id_key,
            shape=shape,
            derived=derived,
            unknown_keys=getattr(cfg, "unknown_keys", "carry"),
        )

    def __call__(self, obj: Any, *, origin: str | None = None, line: int | None = None) -> Document:
        if isinstance(obj, Document):
            doc = Document(
                text=obj.text,
                id=obj.id,
                metadata=dict(obj.metadata),
                labels=list(obj.labels),
                quality_score=obj.quality_score,
                messages=obj.messages,
                conversation_kind=obj.conversation_kind or ("messages" if obj.messages else None),
                origin=obj.origin or origin,
                line=obj.line if obj.line is not None else line,
                tools=obj.tools,
                parallel_tool_calls=obj.parallel_tool_calls,
                rejected=obj.rejected,
                prompt_turns=obj.prompt_turns,
                desirable=obj.desirable,
                media=obj.media,
            )
            if doc.quality_score is not None:
                doc.quality_score = _score(doc.quality_score, origin, line)
            elif "quality_score" in doc.metadata:
                doc.quality_score = _score(doc.metadata["quality_score"], origin, line)
            if not doc.id:
                doc.id = self._derive_id(doc.text)
            return doc
        if isinstance(obj, Mapping):
            return self._from_mapping(obj, origin, line)
        return self._from_mapping(_object_to_mapping(obj), origin, line)

    def _from_mapping(
        self, row: Mapping[str, Any], origin: str | None, line: int | None
    ) -> Document:
        def bad(message: str, reason: str = "invalid") -> InputError:
            return InputError(message, source=origin, line=line, reason=reason)

        given = row
        row = self.shape.apply(row)
        try:
            conversation = read_conversation(row, self.shape)
        except ConversationError as exc:
            raise InputError(str(exc), source=origin, line=line, reason=exc.reason) from None
        skip = conversation.keys if conversation else set()
        mapped = set(skip) | {self.text_key, self.id_key, "metadata"}
        metadata: dict[str, Any] = {}
        nested = row.get("metadata")
        if nested is not None:
            if not isinstance(nested, Mapping):
                raise bad(f"field 'metadata' must be an object, got {json_kind(nested)}")
            metadata.update(nested)
        desirable = _kto_label(row, conversation, bad)
        if desirable is not None:
            mapped.update(k for k in KTO_KEYS if k in row)
        media = _media(row, conversation, bad)
        mapped.update(k for k in MEDIA_KINDS if k in row)
        carried = set()
        for key, value in row.items():
            if key not in _RESERVED and key not in mapped:
                metadata[key] = value
                carried.add(key)
        if "source_path" in metadata and metadata.get("source") is None:
            metadata["source"] = str(metadata.pop("source_path"))
            carried.discard("source_path")
            mapped.add("source_path")

        messages = conversation.messages if conversation else None
        text = row.get(self.text_key)
        if text is None and self.text_key == "text" and "content" in row:
            text = metadata.pop("content")  # pipeline objects call the text "content"
            carried.discard("content")
            mapped.add("content")
        if text is None:
            if messages is None:
                raise InputError(
                    f"no known shape: no '{self.text_key}' field and no conversation "
                    f"(keys: {', '.join(sorted(map(str, given))) or 'none'}; name them with "
                    "input.columns)",
                    source=origin,
                    line=line,
                    reason="unknown_shape",
                )
            text = "\n\n".join(t for m in messages if (t := message_text(m)))
        elif not isinstance(text, str):
            raise bad(f"field '{self.text_key}' must be a string, got {json_kind(text)}")
        if media is not None and messages is None:
            _check_placeholders(media, [text], bad)

        for key in _STRING_KEYS & metadata.keys():
            value = metadata[key]
            if value is not None and not isinstance(value, str):
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metadata[key] = str(value)
                else:
                    raise bad(f"field '{key}' must be a string, got {json_kind(value)}")
        for key in _LIST_KEYS & metadata.keys():
            metadata[key] = _as_list(metadata[key], key, bad)
        labels = [str(x) for x in metadata.get("labels") or []]
        if "labels" in metadata:
            metadata["labels"] = labels
        if "topics" in metadata:
            metadata["topics"] = [str(x) for x in metadata["topics"]]
        score = _score(metadata.pop("quality_score", None), origin, line)
        known = carried & _KNOWN
        carried -= known
        mapped |= known
        if carried and self.unknown_keys == "fail":
            names = ", ".join(repr(self._original.get(k, k)) for k in sorted(carried))
            raise bad(
                f"unknown key(s) {names} (input.unknown_keys: fail; map them with "
                "input.columns, or set unknown_keys: carry)",
                "unknown_key",
            )
        self._count(given, mapped, carried)

        doc_id = row.get(self.id_key)
        if doc_id is None or doc_id == "":
            doc_id = self._derive_id(text)
        elif isinstance(doc_id, str | int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        else:
            raise bad(f"field '{self.id_key}' must be a string or integer, got {json_kind(doc_id)}")
        return Document(
            text=text,
            id=doc_id,
            metadata=metadata,
            labels=labels,
            quality_score=score,
            messages=messages,
            conversation_kind=conversation.kind if conversation else None,
            origin=origin,
            line=line,
            tools=conversation.tools if conversation else None,
            parallel_tool_calls=conversation.parallel_tool_calls if conversation else None,
            rejected=conversation.rejected if conversation else None,
            prompt_turns=conversation.prompt_turns if conversation else None,
            desirable=desirable,
            media=media,
        )

    def _count(self, given: Mapping[str, Any], mapped: set[str], carried: set[str]) -> None:
        """The record's keys, by their names in the file, in the field-level account."""
        renames = self.shape.renames()
        out = {}
        for key in given:
            name = renames.get(key, key)
            if name in carried:
                out[str(key)] = "carried"
            elif name in mapped:
                out[str(key)] = "mapped"
            else:
                out[str(key)] = "dropped"
        self.fields.add(out)

    def _derive_id(self, text: str) -> str:
        base = "doc-" + xxhash.xxh3_64_hexdigest(text.encode("utf-8", "surrogatepass"))
        seen = self.derived.get(base, 0) + 1
        self.derived[base] = seen
        return base if seen == 1 else f"{base}-{seen}"


def _kto_label(row: Mapping[str, Any], conversation: Any, bad: Any) -> bool | None:
    """A KTO label: ``kto_tag`` (LLaMA-Factory, named by ``input.columns``) or a boolean
    ``label`` (TRL's unpaired preference data), on a conversation that is not a pair."""
    key = "kto_tag" if "kto_tag" in row else "label" if isinstance(row.get("label"), bool) else None
    if key is None:
        return None
    value = row[key]
    if not isinstance(value, bool):
        raise bad(f"field '{key}' (a KTO label) must be true or false, got {json_kind(value)}",
                  "bad_kto_label")  # fmt: skip
    if conversation is None or conversation.rejected is not None:
        raise bad(
            f"field '{key}' (a KTO label) needs a conversation with one completion, not "
            + ("a preference pair" if conversation is not None else "a text document"),
            "bad_kto_label",
        )
    return value


def _media(row: Mapping[str, Any], conversation: Any, bad: Any) -> dict[str, list[str]] | None:
    """The media references of a record (top-level ``images``, ``videos``, ``audios``
    and those of content parts); with a conversation, the placeholders of its messages
    must match them in number."""
    media: dict[str, list[str]] = {}
    for kind in MEDIA_KINDS:
        value = row.get(kind)
        if value is None or value == []:
            continue
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(
                f"field '{kind}' must be a list of paths or URLs (strings): qudata carries "
                "media references, not media",
                "bad_media",
            )
        media[kind] = list(value)
    for kind, references in ((conversation.media if conversation else None) or {}).items():
        media.setdefault(kind, []).extend(references)
    if not media:
        return None
    if conversation is not None:
        texts = [m.get("content") for m in conversation.messages]
        _check_placeholders(media, [t for t in texts if isinstance(t, str)], bad)
    return media


def _check_placeholders(media: dict[str, list[str]], texts: list[str], bad: Any) -> None:
    for kind, references in media.items():
        tag = PLACEHOLDERS[kind]
        count = sum(text.count(tag) for text in texts)
        if count != len(references):
            raise bad(
                f"field '{kind}' holds {len(references)} reference(s) but the text has "
                f"{count} {tag} placeholder(s)",
                "media_mismatch",
            )


def _as_list(value: Any, key: str, bad: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    raise bad(f"field '{key}' must be a list or a string, got {json_kind(value)}")


def _score(value: Any, origin: str | None, line: int | None) -> float | None:
    """A quality score is a finite number in [0, 1]; anything else is rejected
    (``invalid_quality_score``): a score of 1.7 or -3 has no meaning to a filter."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= 1
    ):
        raise InputError(
            f"field 'quality_score' must be a finite number in [0, 1], got {value!r}",
            source=origin,
            line=line,
            reason="invalid_quality_score",
        )
    return float(value)


def _object_to_mapping(obj: Any) -> dict[str, Any]:
    """Read a pipeline-style object (``content``, ``source_path``, ``metadata``)."""
    row: dict[str, Any] = {}
    for name in ("id", "text", "content", "labels", "quality_score", "source_path", "messages"):
        if hasattr(obj, name):
            row[name] = getattr(obj, name)
    meta = getattr(obj, "metadata", None)
    if dataclasses.is_dataclass(meta) and not isinstance(meta, type):
        meta = dataclasses.asdict(meta)
    elif meta is not None and not isinstance(meta, Mapping):
        meta = {k: v for k, v in vars(meta).items() if not k.startswith("_")}
    if meta is not None:
        row["metadata"] = dict(meta)
    if not row:
        raise InputError(f"cannot read a document from {type(obj).__name__!s} (no text or content)")
    return row
