"""Question-answer: ``question``, ``answer`` (a user and an assistant turn)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qudata.normalize.conversation import Conversation, InputShape, turn
from qudata.normalize.turns import Turns

__all__ = ["SHAPE"]


def _read(row: Mapping[str, Any], turns: Turns) -> Conversation:
    messages = [turn("user", row.get("question")), turn("assistant", row.get("answer"))]
    return Conversation("question_answer", messages)


SHAPE = InputShape(
    kinds={"question_answer": ("question", "answer")},
    matches=lambda row: "question" in row and "answer" in row,
    read=_read,
)
