"""The error a shape reader raises: the record's conversation has the wrong shape."""

from __future__ import annotations

__all__ = ["ConversationError"]


class ConversationError(ValueError):
    """The record's conversation has the wrong shape (the message says which);
    ``reason`` is its drop code."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason
