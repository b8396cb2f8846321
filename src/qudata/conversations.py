"""Conversation sources: every shape a chat record arrives in, turned into ``messages``.

Detected per record, in this order:

=====================  =========================================================
kind                   input keys
=====================  =========================================================
``messages``           ``messages``: OpenAI / TRL ``role``, ``content`` (+ ``name``,
                       ``weight``, ``tool_calls``, ``tool_call_id``)
``sharegpt``           ``conversations``: ``from`` / ``value`` turns
``alpaca``             ``instruction``, ``output`` (+ ``input``, ``system``)
``prompt_completion``  ``prompt``, ``completion``
``question_answer``    ``question``, ``answer``
=====================  =========================================================

Roles are normalised to ``system``, ``user``, ``assistant`` and ``tool``; an unknown
role is kept as written, so the ChatML checks drop the record with a code
instead of guessing.

    >>> detect({"instruction": "Add 2 and 2.", "input": "", "output": "4"})[1]
    [{'role': 'user', 'content': 'Add 2 and 2.'}, {'role': 'assistant', 'content': '4'}]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "CONVERSATION_KEYS",
    "PROBLEM_CODES",
    "ROLE_ALIASES",
    "ConversationError",
    "conversation_problems",
    "detect",
    "normalize_role",
]

ROLE_ALIASES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "function_call": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
    "function_response": "tool",
}

#: Keys that make up a conversation; they are not copied into metadata.
CONVERSATION_KEYS = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "input", "output", "system"),
    "prompt_completion": ("prompt", "completion"),
    "question_answer": ("question", "answer"),
}


#: Every code :func:`conversation_problems` returns (``qudata validate`` reports each too).
PROBLEM_CODES = (
    "empty_conversation",
    "unknown_role",
    "empty_content",
    "system_not_first",
    "broken_alternation",
    "no_assistant_message",
)


class ConversationError(ValueError):
    """The record's conversation field has the wrong shape (the message says which)."""


def _sharegpt(turns: list[Any]) -> list[dict[str, Any]]:
    """ShareGPT turns as messages. A ``function_call`` turn whose value is a JSON call
    (``{"name": ..., "arguments": ...}``) becomes an assistant message with
    ``tool_calls``, and the ``observation`` after it a ``tool`` message answering it."""
    out: list[dict[str, Any]] = []
    pending: str | None = None
    for number, turn in enumerate(turns):
        speaker = str(turn.get("from") or "").strip().lower()
        message = _turn(normalize_role(turn.get("from")), turn.get("value"))
        call = _function_call(turn.get("value")) if speaker == "function_call" else None
        if call is not None:
            pending = f"call_{number}"
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": pending, "type": "function", "function": call}],
            }
        elif message["role"] == "tool" and pending is not None and "tool_call_id" not in turn:
            message["tool_call_id"] = pending
        for key in ("name", "weight", "tool_calls", "tool_call_id"):
            if key in turn:
                message[key] = turn[key]
        out.append(message)
    return out


def _function_call(value: Any) -> dict[str, str] | None:
    """``{"name", "arguments"}`` (arguments as a JSON string) from a function-call value."""
    import json

    try:
        data = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return None
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
        return None
    arguments = data.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {"name": data["name"], "arguments": arguments}


def normalize_role(role: Any) -> str:
    """``human`` -> ``user``, ``gpt`` -> ``assistant``, ...; unknown roles unchanged."""
    text = str(role) if role is not None else ""
    return ROLE_ALIASES.get(text.strip().lower(), text)


def _turn(role: str, content: Any) -> dict[str, Any]:
    return {"role": role, "content": content}


def detect(row: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """``(kind, messages)`` for a conversation record, ``None`` for a plain document."""
    if row.get("messages") is not None:
        messages = row["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
            raise ConversationError("field 'messages' must be a list of objects")
        out = []
        for message in messages:
            turn = dict(message)
            turn["role"] = normalize_role(turn.get("role"))
            out.append(turn)
        return "messages", out
    if row.get("conversations") is not None:
        turns = row["conversations"]
        if not isinstance(turns, list) or not all(isinstance(t, Mapping) for t in turns):
            raise ConversationError("field 'conversations' must be a list of objects")
        return "sharegpt", _sharegpt(turns)
    if "instruction" in row and "output" in row:
        prompt = str(row.get("instruction") or "")
        extra = row.get("input")
        if extra:
            prompt = f"{prompt}\n\n{extra}" if prompt else str(extra)
        out = [_turn("user", prompt), _turn("assistant", row.get("output"))]
        if row.get("system"):
            out.insert(0, _turn("system", row["system"]))
        return "alpaca", out
    if "prompt" in row and "completion" in row:
        return "prompt_completion", [
            _turn("user", row.get("prompt")),
            _turn("assistant", row.get("completion")),
        ]
    if "question" in row and "answer" in row:
        return "question_answer", [
            _turn("user", row.get("question")),
            _turn("assistant", row.get("answer")),
        ]
    return None


def conversation_problems(messages: list[dict[str, Any]]) -> list[str]:
    """Codes of what makes ``messages`` unusable for training (empty list: fine).

    ``empty_conversation``, ``unknown_role``, ``empty_content`` (no text, unless an
    assistant message carries ``tool_calls``), ``system_not_first``,
    ``broken_alternation`` (after the system turn, user and assistant take turns;
    tool results follow an assistant message with ``tool_calls``),
    ``no_assistant_message``.
    """
    if not messages:
        return ["empty_conversation"]
    problems: list[str] = []
    roles = [m.get("role") for m in messages]
    if any(r not in ("system", "user", "assistant", "tool") for r in roles):
        problems.append("unknown_role")
    for m in messages:
        content = m.get("content")
        if not (isinstance(content, str) and content.strip()) and not (
            m.get("role") == "assistant" and m.get("tool_calls") and content in (None, "")
        ):
            problems.append("empty_content")
            break
    if "system" in roles[1:]:
        problems.append("system_not_first")
    if _broken_alternation([r for r in roles if r != "system"], messages):
        problems.append("broken_alternation")
    if "assistant" not in roles:
        problems.append("no_assistant_message")
    return problems


def _broken_alternation(roles: list[Any], messages: list[dict[str, Any]]) -> bool:
    turns = [m for m in messages if m.get("role") != "system"]
    previous = None
    calls_open = False
    for role, message in zip(roles, turns, strict=True):
        if role == "tool":
            if not calls_open:
                return True
        elif role == "user":
            if previous not in (None, "assistant", "tool"):
                return True
            calls_open = False
        elif role == "assistant":
            if previous not in ("user", "tool"):
                return True
            calls_open = bool(message.get("tool_calls"))
        previous = role
    return False
