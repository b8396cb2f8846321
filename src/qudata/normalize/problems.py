"""What makes normalised messages unusable for training: one code per problem.

>>> conversation_problems([{"role": "user", "content": "Hi"}])
['no_assistant_message']
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROBLEM_CODES", "conversation_problems", "ends_on_user"]

#: Every code :func:`conversation_problems` returns (``qudata validate`` reports each too).
PROBLEM_CODES = (
    "empty_conversation",
    "unknown_role",
    "empty_content",
    "system_not_first",
    "broken_alternation",
    "no_assistant_message",
    "ends_on_user",
)


def ends_on_user(doc: Any) -> bool:
    """A conversation document whose last turn is a user turn (nothing to learn from it
    as supervised data: it is dropped as ``ends_on_user``)."""
    messages = getattr(doc, "messages", None)
    return isinstance(messages, list) and bool(messages) and messages[-1].get("role") == "user"


def conversation_problems(messages: list[dict[str, Any]]) -> list[str]:
    """Codes of what makes ``messages`` unusable for training (empty list: fine).

    ``empty_conversation``, ``unknown_role``, ``empty_content`` (no text, unless an
    assistant message carries ``tool_calls``), ``system_not_first``,
    ``broken_alternation`` (after the system turn, user and assistant take turns;
    tool results follow an assistant message with ``tool_calls``),
    ``no_assistant_message``, ``ends_on_user`` (nothing answers the last user turn:
    a preference prompt, say; training on it would teach the model to stop there).
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
    elif roles[-1] == "user":
        problems.append("ends_on_user")
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
