"""Token budgets: cut a long text into parts that each fit, or truncate it.

Cuts fall on paragraph boundaries first, then sentence boundaries, then token
boundaries (found by bisection on the text with the exact counter, so no part
ever exceeds the budget and no character is lost or split).

    >>> count = lambda s: len(s.split())
    >>> split_to_budget("one two. three four.\\n\\nfive six", 2, count)
    ['one two.', 'three four.', 'five six']
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["split_to_budget", "truncate_to_budget"]

Count = Callable[[str], int]
_SENTENCE = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+")  # also CJK full stops


def _prefix_within(text: str, budget: int, count: Count) -> int:
    """The longest prefix length (>= 1 char) of ``text`` with at most ``budget`` tokens."""
    low, high = 1, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if count(text[:mid]) <= budget:
            low = mid
        else:
            high = mid - 1
    # prefer to cut after whitespace when one is near, so words stay whole
    space = text.rfind(" ", 0, low)
    return space + 1 if space > low // 2 else low


def _by_tokens(text: str, budget: int, count: Count) -> list[str]:
    parts = []
    while text:
        if count(text) <= budget:
            parts.append(text)
            break
        cut = _prefix_within(text, budget, count)
        parts.append(text[:cut].rstrip() or text[:cut])
        text = text[cut:].lstrip()
    return [p for p in parts if p]


def _pack(
    pieces: list[str], joiner: str, budget: int, count: Count, finer: Callable[[str], list[str]]
) -> list[str]:
    """Greedily join ``pieces`` into parts within ``budget``; oversize pieces go to ``finer``."""
    parts: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{joiner}{piece}" if current else piece
        if count(candidate) <= budget:
            current = candidate
            continue
        if current:
            parts.append(current)
            current = ""
        if count(piece) <= budget:
            current = piece
        else:
            parts.extend(finer(piece))
    if current:
        parts.append(current)
    return parts


def split_to_budget(text: str, budget: int, count: Count) -> list[str]:
    """``text`` in order, as parts of at most ``budget`` tokens each."""
    if count(text) <= budget:
        return [text]

    def sentences(paragraph: str) -> list[str]:
        return _pack(
            _SENTENCE.split(paragraph), " ", budget, count, lambda s: _by_tokens(s, budget, count)
        )

    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return _pack(paragraphs, "\n\n", budget, count, sentences)


def truncate_to_budget(text: str, budget: int, count: Count) -> str:
    """The longest prefix of ``text`` within ``budget`` tokens (cut as :func:`split_to_budget`)."""
    return split_to_budget(text, budget, count)[0]
