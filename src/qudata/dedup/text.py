"""What a document is compared on for duplicates: its text, normalised, hashed, shingled.

The exact key is the xxh3-128 digest of the normalised text (Unicode NFC, case
folded, whitespace runs to one space). Near dedup's shingles are the word n-grams of
the same normalised text, or, for a text mostly in scripts written without spaces
(Chinese, Japanese, Thai: at least :data:`CHAR_SHINGLE_SHARE` of its non-space
characters, :mod:`qudata.unicode_scripts`), the character n-grams of its non-space
characters: a Chinese paragraph is one whitespace "word", so word shingles would make
any one-character edit a different document.

    >>> exact_key("Hello  World") == exact_key("hello world")
    True
    >>> shingles("a b c d", 2)
    ['a b', 'b c', 'c d']
    >>> shingles("今天 天气很好", 3)
    ['今天天', '天天气', '天气很', '气很好']
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

import xxhash

from qudata.unicode_scripts import UNSPACED, unspaced_share

__all__ = [
    "CHAR_SHINGLE_SHARE",
    "char_shingles",
    "dedup_text",
    "exact_key",
    "normalize_text",
    "normalized_key",
    "shingles",
    "text_shingles",
    "word_shingles",
]

#: A text is shingled by characters when at least this share of its non-space
#: characters are of unspaced scripts (Chinese, Japanese, Thai, ...).
CHAR_SHINGLE_SHARE = 0.3


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
    """The shingles of a normalised text (:func:`text_shingles`)."""
    return text_shingles(normalized.split(" "), ngram)


def text_shingles(words: list[str], ngram: int) -> list[str]:
    """The shingles of a normalised text already split into words: its character
    ``ngram``-grams when it is mostly in unspaced scripts, else its word ``ngram``-grams."""
    joined = "".join(words)
    if UNSPACED.search(joined) is not None and unspaced_share(joined) >= CHAR_SHINGLE_SHARE:
        return char_shingles(joined, ngram)
    return word_shingles(words, ngram)


def char_shingles(chars: str, ngram: int) -> list[str]:
    """Character ``ngram``-grams of ``chars`` (the whole string when it is shorter)."""
    if len(chars) <= ngram:
        return [chars]
    return [chars[i : i + ngram] for i in range(len(chars) - ngram + 1)]


def word_shingles(words: list[str], ngram: int) -> list[str]:
    """:func:`shingles` of a text already split into words."""
    if len(words) <= ngram:
        return [" ".join(words)]
    return list(map(" ".join, zip(*(words[i:] for i in range(ngram)), strict=False)))
