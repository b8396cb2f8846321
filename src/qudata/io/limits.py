"""Bounds on what one input record may cost: its text's length, and what a reject keeps.

A reject line keeps at most :data:`MAX_DETAIL` characters of its detail and of a
bad record's id, so a small corrupt input can never make a huge ``rejects.jsonl``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from qudata.models import Document

__all__ = ["MAX_DETAIL", "bounded", "bounded_id", "too_long"]

MAX_DETAIL = 1024


def too_long(doc: Document, max_chars: int | None) -> str | None:
    """Why ``doc`` is over ``input.max_document_chars``, or ``None``."""
    if max_chars is None or len(doc.text) <= max_chars:
        return None
    return (
        f"a document of {len(doc.text):,} characters, over the limit of {max_chars:,} "
        "(input.max_document_chars)"
    )


def bounded(text: str, limit: int = MAX_DETAIL) -> str:
    """``text``, or its first ``limit`` characters and how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters in all)"


def bounded_id(value: Any, limit: int = MAX_DETAIL) -> Any:
    """A record's id for a reject line: as is when short and scalar, else bounded text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return bounded(value, limit)
    try:
        text = orjson.dumps(value).decode("utf-8")
    except TypeError:
        text = repr(value)
    return bounded(text, limit)
