"""The interface every token counter has, and the fallback for token ends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["TokenCounter", "proportional_ends"]


def proportional_ends(text: str, n: int) -> list[int]:
    """``n`` token ends spread evenly over ``text``: a fallback when offsets are unknown
    (the budget recounts every part, so a poor guess costs time, never correctness)."""
    size = len(text)
    return [(k + 1) * size // n for k in range(n)]


class TokenCounter(Protocol):
    """Counts tokens; ``exact`` is False for an estimate.

    >>> from qudata.quality.tokens import get_token_counter
    >>> get_token_counter("estimate").count_batch(["a b", "c"])
    [1, 1]
    """

    name: str
    exact: bool

    def count(self, text: str) -> int: ...
    def count_batch(self, texts: Sequence[str]) -> list[int]: ...
    def token_ends(self, text: str, tokens: Any = None) -> Sequence[int]:
        """For each token of ``text``, the character offset where it ends: non-decreasing,
        one per token (so its length is :meth:`count`), the last one ``len(text)``. A
        token that ends inside a character (a byte-level token of a multi-byte one)
        reports that character's start, so every end is a safe place to cut.

        ``tokens``: what the counter's ``encode_batch`` (if it has one) gave for
        ``text``, so that a text counted first is not tokenized again."""
        ...
