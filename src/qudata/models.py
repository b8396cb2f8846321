"""The one :class:`Document` type every stage and format works on.

Input in any shape becomes a :class:`Document` in one place,
:class:`qudata.normalize.DocumentNormalizer`.

    >>> doc = Document(text="Hello.", metadata={"source": "a.pdf", "topics": ["AI"]})
    >>> doc.source, doc.topics
    ('a.pdf', ['AI'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KNOWN_METADATA_KEYS", "Document", "json_kind", "token_texts"]

#: Metadata keys with a fixed meaning and a fixed output type.
KNOWN_METADATA_KEYS = (
    "source",
    "title",
    "language",
    "topics",
    "labels",
    "quality_score",
    "author",
    "domain",
    "entities",
)


@dataclass(slots=True)
class Document:
    """A document: text, free-form metadata, labels and an optional quality score.

    ``messages`` holds a conversation (OpenAI ``role``/``content`` dicts, roles
    normalised) when the input was one, and ``conversation_kind`` the shape it came
    in (see :mod:`qudata.normalize.shapes`); ``text`` is then the conversation's text.
    ``origin`` and
    ``line`` say where the document was read (for error messages and rejects);
    ``cluster`` is its duplicate-cluster key once deduplication has run. ``tools`` holds
    a conversation's tool schemas; a preference record keeps its chosen conversation in
    ``messages`` (the first ``prompt_turns`` are the prompt) and the rejected answer in
    ``rejected``. ``desirable`` is a KTO label (``True``: a completion to learn from,
    ``False``: one to learn against); ``media`` holds references (paths or URLs, never
    the bytes) by kind: ``images``, ``videos``, ``audios``.

    Example::

        Document(text="Content goes here...", id="d1",
                 metadata={"source": "document.pdf", "topics": ["AI"]},
                 quality_score=0.85)
    """

    text: str
    id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    quality_score: float | None = None
    messages: list[dict[str, Any]] | None = None
    conversation_kind: str | None = None
    origin: str | None = None
    line: int | None = None
    cluster: str | None = None  # duplicate-cluster key, set by deduplication
    tools: list[dict[str, Any]] | None = None  # tool schemas, OpenAI form
    parallel_tool_calls: bool | None = None
    rejected: list[dict[str, Any]] | None = None  # a preference record's rejected answer
    prompt_turns: int | None = None  # a preference record: messages[:prompt_turns] prompt
    desirable: bool | None = None  # a KTO label
    media: dict[str, list[str]] | None = None  # media references by kind (images, ...)

    @property
    def is_preference(self) -> bool:
        return self.rejected is not None and self.prompt_turns is not None

    @property
    def source(self) -> str | None:
        value = self.metadata.get("source")
        return value if isinstance(value, str) else None

    @property
    def title(self) -> str | None:
        value = self.metadata.get("title")
        return value if isinstance(value, str) else None

    @property
    def topics(self) -> list[str]:
        value = self.metadata.get("topics")
        return list(value) if isinstance(value, list) else []


def json_kind(value: Any) -> str:
    """The JSON type of ``value``: null, boolean, number, string, array, object (or the
    Python type's name for a value JSON has no type for)."""
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
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def token_texts(doc: Document) -> list[str]:
    """The texts of a document that formats count tokens of: its text and its messages'
    contents and reasoning, a preference pair's rejected answer too (counted in advance,
    in one batch, by the pipeline and the Ray workers)."""
    texts = [doc.text]
    for message in [*(doc.messages or ()), *(doc.rejected or ())]:
        for key in ("content", "reasoning_content"):
            value = message.get(key)
            if isinstance(value, str):
                texts.append(value)
    return texts
