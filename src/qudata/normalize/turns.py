"""Conversation turns: a list of turns in any common layout, read into OpenAI messages.

A turn is ``role``/``content`` (OpenAI, TRL) or ``from``/``value`` (ShareGPT), or the
keys that ``input.tags`` names. Roles are normalised (:data:`ROLE_ALIASES`, plus
``input.role_map``); content given as parts is read by :mod:`qudata.normalize.parts`
(text, reasoning, tool calls, media references); a ShareGPT ``function_call`` turn and an
OpenAI legacy ``function_call`` become ``tool_calls`` in OpenAI form.

    >>> Turns().read([{"from": "human", "value": "Hi"}], "conversations")
    [{'role': 'user', 'content': 'Hi'}]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qudata.normalize.columns import Shape
from qudata.normalize.errors import ConversationError
from qudata.normalize.parts import read_parts
from qudata.normalize.tools import (
    ToolError,
    attach_tool_results,
    normalize_tool_call,
    render_call,
)

__all__ = ["ROLE_ALIASES", "ConversationError", "Turns", "message_text", "normalize_role"]

ROLE_ALIASES = {
    "system": "system",
    "developer": "system",
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


def normalize_role(role: Any, extra: Mapping[str, str] | None = None) -> str:
    """``human`` -> ``user``, ``gpt`` -> ``assistant``, ...; unknown roles unchanged."""
    text = str(role) if role is not None else ""
    key = text.strip().lower()
    if extra and key in extra:
        mapped = extra[key]
        return "assistant" if mapped == "function_call" else mapped
    return ROLE_ALIASES.get(key, text)


def message_text(message: Mapping[str, Any]) -> str:
    """A message's content and its tool calls (Hermes ``<tool_call>`` blocks), as text."""
    content = message.get("content")
    parts = [content] if isinstance(content, str) and content else []
    parts.extend(render_call(c) for c in message.get("tool_calls") or () if isinstance(c, Mapping))
    return "\n".join(parts)


#: Message keys that would change what is trained on, and that no output can honour:
#: a message carrying one is refused (``unsupported_key``) rather than trained on whole.
LOSS_FLAGS = ("train", "training", "loss", "mask", "loss_mask", "trainable")


def _loss_weight(message: dict[str, Any]) -> None:
    """LLaMA-Factory v1's ``loss_weight``: 1 on an assistant turn and 0 on any other is
    what every output does anyway; 0 on an assistant turn is OpenAI's ``weight: 0``;
    any other value is refused."""
    value = message.pop("loss_weight")
    assistant = message.get("role") == "assistant"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConversationError("message key 'loss_weight' must be a number", "unsupported_key")
    if value == (1 if assistant else 0):
        return
    if assistant and value == 0:
        message["weight"] = 0
        return
    raise ConversationError(
        f"message key 'loss_weight' is {value} on a {message.get('role')} turn (only 1 on "
        "assistant turns, 0 on an assistant turn not to learn from, and 0 elsewhere can be "
        "packed)",
        "unsupported_key",
    )


class Turns:
    """Reads a list of turns (``role``/``content`` or ``from``/``value``, or the keys of
    ``input.tags``) into messages, tool calls in OpenAI form."""

    def __init__(self, shape: Shape | None = None) -> None:
        self.shape = shape or Shape()
        self.roles = self.shape.roles()
        self.call_speakers = {"function_call"} | {
            k for k, v in self.roles.items() if v == "function_call"
        }
        #: media references found in content parts, by kind (``images``, ...)
        self.media: dict[str, list[str]] = {}

    def role_of(self, turn: Mapping[str, Any]) -> Any:
        key = self.shape.role_key
        return turn.get(key) if key else turn.get("role", turn.get("from"))

    def content_of(self, turn: Mapping[str, Any]) -> Any:
        key = self.shape.content_key
        if key:
            return turn.get(key)
        return turn["content"] if "content" in turn else turn.get("value")

    @staticmethod
    def _key(turn: Mapping[str, Any], tag: str | None, first: str, second: str) -> str:
        """The key a turn's role (or content) was read from."""
        return tag or (first if first in turn else second)

    def _add_parts(self, message: dict[str, Any], parts: Any) -> None:
        """Reasoning, tool calls and media references of a message given as parts."""
        if parts.reasoning:
            message["reasoning_content"] = "".join(parts.reasoning)
        if parts.calls:
            message["tool_calls"] = [*(message.get("tool_calls") or ()), *parts.calls]
        for kind, references in parts.media.items():
            self.media.setdefault(kind, []).extend(references)

    def read(self, turns: Any, field_name: str) -> list[dict[str, Any]]:
        if not isinstance(turns, list) or not all(isinstance(t, Mapping) for t in turns):
            raise ConversationError(f"field '{field_name}' must be a list of objects")
        out = [self.turn(turn, number) for number, turn in enumerate(turns)]
        attach_tool_results(out)
        return out

    def turn(self, turn: Mapping[str, Any], number: int) -> dict[str, Any]:
        speaker = self.role_of(turn)
        content = self.content_of(turn)
        parts = read_parts(content) if isinstance(content, list) else None
        if parts is not None:
            content = parts.text if parts.has_text or not parts.calls else None
        message: dict[str, Any] = {"role": normalize_role(speaker, self.roles), "content": content}
        if str(speaker or "").strip().lower() in self.call_speakers:
            calls = _function_calls(content)
            if calls is not None:
                message["content"] = None
                message["tool_calls"] = calls
        used = {self._key(turn, self.shape.role_key, "role", "from")}
        used.add(self._key(turn, self.shape.content_key, "content", "value"))
        for key, value in turn.items():  # everything else is kept as written
            if key not in used and key != "function_call" and key not in message:
                message[key] = value
        if isinstance(turn.get("function_call"), Mapping) and "tool_calls" not in message:
            message["tool_calls"] = [turn["function_call"]]  # OpenAI's legacy form
        if parts is not None:
            self._add_parts(message, parts)
        for flag in LOSS_FLAGS:
            if flag in message:
                raise ConversationError(
                    f"message key {flag!r} (a loss flag) cannot be packed: no output keeps it; "
                    "use OpenAI's 'weight: 0' on an assistant turn not to learn from",
                    "unsupported_key",
                )
        if "loss_weight" in message:
            _loss_weight(message)
        try:
            if message.get("tool_calls") is not None:
                calls = message["tool_calls"]
                if not isinstance(calls, list):
                    raise ToolError("tool_calls must be a list", "bad_tool_call")
                message["tool_calls"] = [
                    normalize_tool_call(c, f"call_{number}" if k == 0 else f"call_{number}_{k}")
                    for k, c in enumerate(calls)
                ]
        except ToolError as exc:
            raise ConversationError(str(exc), exc.reason) from None
        return message


def _function_calls(value: Any) -> list[Any] | None:
    """The call(s) in a ShareGPT ``function_call`` value (a JSON object or list)."""
    import json

    try:
        data = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return None
    calls = data if isinstance(data, list) else [data]
    if not calls or not all(
        isinstance(c, Mapping) and isinstance(c.get("name"), str) for c in calls
    ):
        return None
    return calls
