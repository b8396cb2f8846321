"""Alpaca: ``instruction``, ``output`` (+ ``input``, ``system``, ``history``).

>>> alpaca_turns({"instruction": "Add 2 and 2.", "input": "", "output": "4"})
[{'role': 'user', 'content': 'Add 2 and 2.'}, {'role': 'assistant', 'content': '4'}]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qudata.normalize.conversation import Conversation, InputShape, turn
from qudata.normalize.turns import ConversationError, Turns

__all__ = ["SHAPE", "alpaca_prompt", "alpaca_turns"]


def alpaca_turns(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``history`` pairs, then the instruction (+ input) and the output."""
    out: list[dict[str, Any]] = []
    history = row.get("history") or []
    if not isinstance(history, list) or not all(
        isinstance(p, list | tuple) and len(p) == 2 for p in history
    ):
        raise ConversationError("field 'history' must be a list of [prompt, response] pairs")
    for prompt, response in history:
        out += [turn("user", prompt), turn("assistant", response)]
    out.append(turn("user", alpaca_prompt(row)))
    if "output" in row:
        out.append(turn("assistant", row.get("output")))
    return out


def alpaca_prompt(row: Mapping[str, Any]) -> str:
    """The instruction, then the input after a blank line."""
    prompt = str(row.get("instruction") or "")
    extra = row.get("input")
    if extra:
        prompt = f"{prompt}\n\n{extra}" if prompt else str(extra)
    return prompt


def _read(row: Mapping[str, Any], turns: Turns) -> Conversation:
    return Conversation("alpaca", alpaca_turns(row))


SHAPE = InputShape(
    kinds={"alpaca": ("instruction", "input", "output", "history")},
    matches=lambda row: "instruction" in row and "output" in row,
    read=_read,
)
