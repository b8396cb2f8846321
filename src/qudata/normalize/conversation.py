"""What a shape reader returns (:class:`Conversation`) and what a shape declares
(:class:`InputShape`): the two types every shape module shares."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qudata.normalize.turns import Turns

__all__ = ["Conversation", "InputShape", "turn"]


@dataclass
class Conversation:
    """A detected conversation: its kind, messages and what comes with them.

    A preference record holds its chosen conversation in ``messages`` (the prompt is
    the first ``prompt_turns`` messages) and the rejected answer in ``rejected``.
    ``keys`` are the record's keys the conversation was read from (not copied into
    metadata).
    """

    kind: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    parallel_tool_calls: bool | None = None
    rejected: list[dict[str, Any]] | None = None
    prompt_turns: int | None = None
    keys: set[str] = field(default_factory=set)
    media: dict[str, list[str]] | None = None  # references found in content parts


@dataclass(frozen=True)
class InputShape:
    """One input shape: the kinds it reads (kind -> the record keys that make it up),
    how to recognise a record of it and how to read one.

    ``matches(row)`` decides (rows are tried in the order of the table in
    :mod:`qudata.normalize.shapes`); ``read(row, turns)`` returns the
    :class:`Conversation` or raises :class:`~qudata.normalize.turns.ConversationError`.
    A kind whose keys include ``tools`` reads the record's tool schemas too.
    """

    kinds: Mapping[str, tuple[str, ...]]
    matches: Callable[[Mapping[str, Any]], bool]
    read: Callable[[Mapping[str, Any], Turns], Conversation]


def turn(role: str, content: Any) -> dict[str, Any]:
    """One message."""
    return {"role": role, "content": content}
