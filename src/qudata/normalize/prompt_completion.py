"""Prompt-completion: ``prompt``, ``completion`` as strings (a user and an assistant
turn) or, as TRL's conversational prompt-completion data, lists of messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qudata.normalize.conversation import Conversation, InputShape, turn
from qudata.normalize.turns import Turns

__all__ = ["SHAPE"]


def _read(row: Mapping[str, Any], turns: Turns) -> Conversation:
    prompt, completion = row.get("prompt"), row.get("completion")
    messages = (
        turns.read(prompt, "prompt") if isinstance(prompt, list) else [turn("user", prompt)]
    ) + (
        turns.read(completion, "completion")
        if isinstance(completion, list)
        else [turn("assistant", completion)]
    )
    return Conversation("prompt_completion", messages)


SHAPE = InputShape(
    kinds={"prompt_completion": ("prompt", "completion")},
    matches=lambda row: "prompt" in row and "completion" in row,
    read=_read,
)
