"""ShareGPT: ``conversations`` of ``from`` / ``value`` turns (+ ``system``, ``tools``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qudata.normalize.conversation import Conversation, InputShape
from qudata.normalize.turns import Turns

__all__ = ["SHAPE"]


def _read(row: Mapping[str, Any], turns: Turns) -> Conversation:
    return Conversation("sharegpt", turns.read(row["conversations"], "conversations"))


SHAPE = InputShape(
    kinds={"sharegpt": ("conversations", "tools", "parallel_tool_calls")},
    matches=lambda row: row.get("conversations") is not None,
    read=_read,
)
