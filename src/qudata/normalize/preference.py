"""Preference records (``chosen`` / ``rejected``) in the shapes they are published in:
kinds ``ranking``, ``preference`` and ``hh_rlhf``.

- LLaMA-Factory ranking: ``conversations`` (or ``messages``, or Alpaca
  ``instruction``/``input``) as the prompt, ``chosen`` and ``rejected`` one turn each;
- TRL: ``prompt`` (a string or messages), ``chosen`` and ``rejected`` (strings or
  messages); when ``chosen`` and ``rejected`` are whole conversations (they start with
  a system or user turn; TRL's implicit prompt, or UltraFeedback's layout beside a
  ``prompt`` that repeats it), the prompt is the prefix they share;
- LLaMA-Factory v1: ``chosen_messages`` and ``rejected_messages``, two whole
  conversations (content parts with ``value``): the prompt is the prefix they share;
- Anthropic HH: ``chosen`` and ``rejected`` are transcripts
  ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` sharing the prompt: split at the common prefix.

The result holds the chosen conversation (prompt + chosen answer) as ``messages``, the
first ``prompt_turns`` of them the prompt, and the rejected answer in ``rejected``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from qudata.normalize.alpaca import alpaca_turns
from qudata.normalize.conversation import Conversation, InputShape
from qudata.normalize.turns import ConversationError, Turns

__all__ = ["SHAPE", "read_preference", "split_transcript"]

_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def split_transcript(text: str) -> list[dict[str, Any]] | None:
    """The turns of an HH transcript, ``None`` if ``text`` is not one."""
    if not text.startswith("\n\n"):
        text = "\n\n" + text
    parts = _HH_TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        return None
    return [{"role": _HH_ROLES[parts[i]], "content": parts[i + 1]} for i in range(1, len(parts), 2)]


def _answer(value: Any, turns: Turns, name: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    if isinstance(value, Mapping):
        return [turns.turn(value, 0)]
    return turns.read(value, name)


def _shared_prefix(
    chosen: list[dict[str, Any]], rejected: list[dict[str, Any]], kind: str
) -> Conversation:
    """Split two whole conversations at the longest common prefix that ends on a user turn."""
    common = 0
    while common < min(len(chosen), len(rejected)) and chosen[common] == rejected[common]:
        common += 1
    while common and chosen[common - 1].get("role") != "user":
        common -= 1
    if not common:
        raise ConversationError(
            "chosen and rejected share no prompt ending on a user turn", "no_shared_prompt"
        )
    return Conversation(kind, chosen, rejected=rejected[common:], prompt_turns=common)


def _whole(value: Any, turns: Turns) -> bool:
    """A list of turns that starts with a prompt turn (not with the answer)."""
    if not isinstance(value, list) or not value or not isinstance(value[0], Mapping):
        return False
    return turns.turn(value[0], 0)["role"] in ("system", "user")


def read_preference(row: Mapping[str, Any], turns: Turns) -> Conversation:
    """The preference record in ``row`` (it has ``chosen`` and ``rejected``, or
    LLaMA-Factory v1's ``chosen_messages`` and ``rejected_messages``)."""
    if row.get("chosen") is None:  # v1: two whole conversations
        return _shared_prefix(
            turns.read(row["chosen_messages"], "chosen_messages"),
            turns.read(row["rejected_messages"], "rejected_messages"),
            "preference",
        )
    chosen, rejected = row["chosen"], row["rejected"]
    if _whole(chosen, turns) and _whole(rejected, turns):
        # whole conversations, prompt included (as UltraFeedback, even beside a "prompt"
        # or "messages" field that repeats it): the prompt is their shared prefix
        return _shared_prefix(
            turns.read(chosen, "chosen"), turns.read(rejected, "rejected"), "preference"
        )
    if row.get("conversations") is not None or row.get("messages") is not None:
        key = "conversations" if row.get("conversations") is not None else "messages"
        prompt = turns.read(row[key], key)
        kind = "ranking"
    elif "instruction" in row:
        prompt = alpaca_turns(row)
        kind = "ranking"
    elif row.get("prompt") is not None:
        given = row["prompt"]
        prompt = (
            [{"role": "user", "content": given}]
            if isinstance(given, str)
            else turns.read(given, "prompt")
        )
        kind = "preference"
    elif isinstance(chosen, str) and isinstance(rejected, str):
        whole = split_transcript(chosen), split_transcript(rejected)
        if whole[0] is None or whole[1] is None:
            raise ConversationError(
                "chosen and rejected are strings but no prompt is given, and they are not "
                "Human:/Assistant: transcripts",
                "unknown_shape",
            )
        return _shared_prefix(whole[0], whole[1], "hh_rlhf")
    else:
        raise ConversationError(
            "chosen and rejected are neither answers to a prompt nor whole conversations",
            "unknown_shape",
        )
    good = _answer(chosen, turns, "chosen")
    bad = _answer(rejected, turns, "rejected")
    return Conversation(kind, prompt + good, rejected=bad, prompt_turns=len(prompt))


SHAPE = InputShape(
    kinds={
        "ranking": (
            "conversations",
            "messages",
            "instruction",
            "input",
            "history",
            "chosen",
            "rejected",
            "tools",
            "parallel_tool_calls",
        ),
        "preference": (
            "prompt",
            "chosen",
            "rejected",
            "chosen_messages",
            "rejected_messages",
            "tools",
            "parallel_tool_calls",
        ),
        "hh_rlhf": ("chosen", "rejected"),
    },
    matches=lambda row: (
        (row.get("chosen") is not None and row.get("rejected") is not None)
        or (row.get("chosen_messages") is not None and row.get("rejected_messages") is not None)
    ),
    read=read_preference,
)
