"""OpenAI / TRL messages: ``messages`` of ``role``, ``content`` (+ ``name``, ``weight``,
``tool_calls``, ``tool_call_id``), with ``tools`` (or legacy ``functions``) and
``parallel_tool_calls`` beside them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qudata.normalize.conversation import Conversation, InputShape
from qudata.normalize.turns import Turns

__all__ = ["SHAPE"]


def _read(row: Mapping[str, Any], turns: Turns) -> Conversation:
    return Conversation("messages", turns.read(row["messages"], "messages"))


SHAPE = InputShape(
    kinds={"messages": ("messages", "tools", "functions", "parallel_tool_calls")},
    matches=lambda row: row.get("messages") is not None,
    read=_read,
)
