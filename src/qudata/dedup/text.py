"""What a document is compared on for duplicates: its text, normalised, hashed, shingled.

The exact key is the xxh3-128 digest of the normalised text (Unicode NFC, case
folded, whitespace runs to one space); near dedup's shingles are word n-grams of
the same normalised text.

    >>> exact_key("Hello  World") == exact_key("hello world")
    True
    >>> shingles("a b c d", 2)
    ['a b', 'b c', 'c d']
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

import xxhash

__all__ = [
    "dedup_text",
    "exact_key",
    "normalize_text",
    "normalized_key",
    "shingles",
    "word_shingles",
]


def dedup_text(doc: Any, roles: Sequence[str]) -> str:
    """The text a document is compared on for duplicates.

    A plain document: its text. A conversation: the content of the messages of
    ``roles``, each with its tool calls (name and arguments), then its tool schemas,
    so that conversations differing only in a tool are not duplicates.
    """
    if doc.messages is None:
        return str(doc.text)
    parts = []
    for message in doc.messages:
        if message.get("role") not in roles:
            continue
        parts.append(str(message.get("content") or ""))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, dict) else {}
            parts.append(f"call {function.get('name')} {function.get('arguments')}")
    if doc.tools:
        parts.append(json.dumps(doc.tools, ensure_ascii=False, sort_keys=True))
    return "\n\n".join(parts)


def normalize_text(text: str) -> str:
    """NFC, case folded, whitespace runs collapsed to one space, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def normalized_key(normalized: str) -> bytes:
    """The 16-byte xxh3-128 digest of an already normalised text."""
    return xxhash.xxh3_128_digest(normalized.encode("utf-8", "surrogatepass"))


def exact_key(text: str) -> bytes:
    """The 128-bit xxh3 hash of the normalised text (its hex is the cluster key)."""
    return normalized_key(normalize_text(text))


def shingles(normalized: str, ngram: int) -> list[str]:
    """Word ``ngram``-grams of a normalised text (the whole text when it is shorter)."""
    return word_shingles(normalized.split(" "), ngram)


def word_shingles(words: list[str], ngram: int) -> list[str]:
    """:func:`shingles` of a text already split into words."""
    if len(words) <= ngram:
        return [" ".join(words)]
    return list(map(" ".join, zip(*(words[i:] for i in range(ngram)), strict=False)))
