"""Tool calling: tool schemas and tool calls in the OpenAI form, from any source shape.

A record's ``tools`` become a list of ``{"type": "function", "function": {"name",
"description", "parameters"}}`` (a JSON string, as glaive and LLaMA-Factory store it,
is parsed; a bare ``{"name", ...}`` function is wrapped). An assistant's calls become
``{"id", "type": "function", "function": {"name", "arguments": <JSON string>}}`` (OpenAI's
form; :func:`decode_arguments` gives the JSON values that chat templates expect), and
a tool result without ``tool_call_id`` answers the next open call of the assistant
turn before it. A malformed schema or call raises :class:`ToolError` with its reason.

:func:`render_call` and :func:`tools_prompt` write the Hermes/Qwen convention that
``render: chatml`` uses (the text of Qwen2.5's chat template).

    >>> normalize_tools('[{"name": "add", "parameters": {"type": "object"}}]')
    [{'type': 'function', 'function': {'name': 'add', 'parameters': {'type': 'object'}}}]
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ToolError",
    "attach_tool_results",
    "decode_arguments",
    "normalize_tool_call",
    "normalize_tools",
    "render_call",
    "tool_names",
    "tools_prompt",
    "undeclared_calls",
]

_TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


class ToolError(ValueError):
    """A tool schema or tool call has the wrong shape; ``reason`` is the drop code."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def normalize_tools(value: Any) -> list[dict[str, Any]] | None:
    """The tool schemas of a record in OpenAI form (``None``: the record declares none)."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except ValueError:
            raise ToolError("field 'tools' is not valid JSON", "bad_tools") from None
    if value is None or value == []:
        return None
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise ToolError("field 'tools' must be a list of function schemas", "bad_tools")
    return [_tool(item, number) for number, item in enumerate(value)]


def _tool(item: Any, number: int) -> dict[str, Any]:
    where = f"tools[{number}]"
    if not isinstance(item, Mapping):
        raise ToolError(f"{where} must be an object", "bad_tools")
    if "function" in item or "type" in item:
        if item.get("type", "function") != "function" or not isinstance(
            item.get("function"), Mapping
        ):
            raise ToolError(
                f'{where} must be {{"type": "function", "function": {{...}}}}', "bad_tools"
            )
        function = dict(item["function"])
    else:
        function = dict(item)
    if not isinstance(function.get("name"), str) or not function["name"].strip():
        raise ToolError(f"{where} has no function name", "bad_tools")
    if "description" in function and not isinstance(function["description"], str | None):
        raise ToolError(f"{where}.description must be a string", "bad_tools")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise ToolError(f"{where}.parameters must be a JSON schema object", "bad_tools")
    return {"type": "function", "function": function}


def normalize_tool_call(call: Any, call_id: str) -> dict[str, Any]:
    """One call in OpenAI form; ``call_id`` is used when the call has no ``id``."""
    if not isinstance(call, Mapping):
        raise ToolError("a tool call must be an object", "bad_tool_call")
    function = call.get("function", call)
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise ToolError("a tool call has no function name", "bad_tool_call")
    arguments = function.get("arguments", function.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            json.loads(arguments)
        except ValueError:
            raise ToolError(
                f"the arguments of a call to {function['name']!r} are not valid JSON",
                "bad_tool_call",
            ) from None
    else:
        arguments = _dumps(arguments)
    given = call.get("id")
    return {
        "id": given if isinstance(given, str) and given else call_id,
        "type": "function",
        "function": {"name": function["name"], "arguments": arguments},
    }


def attach_tool_results(messages: list[dict[str, Any]]) -> None:
    """Give each ``tool`` message without ``tool_call_id`` the next open call's id."""
    open_ids: list[str] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            open_ids = [c["id"] for c in message.get("tool_calls") or () if isinstance(c, dict)]
        elif role == "tool":
            if "tool_call_id" not in message and open_ids:
                message["tool_call_id"] = open_ids[0]
            if message.get("tool_call_id") in open_ids:
                open_ids.remove(message["tool_call_id"])
        elif role == "user":
            open_ids = []


def tool_names(tools: list[dict[str, Any]] | None) -> set[str]:
    return {t["function"]["name"] for t in tools or ()}


def undeclared_calls(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
    """How many calls name a function the record's ``tools`` do not declare (0 when the
    record declares no tools: there is nothing to compare with)."""
    if not tools:
        return 0
    names = tool_names(tools)
    return sum(
        1
        for m in messages
        for c in m.get("tool_calls") or ()
        if isinstance(c, Mapping) and c.get("function", {}).get("name") not in names
    )


def render_call(call: Mapping[str, Any]) -> str:
    """``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` (Hermes/Qwen)."""
    function = call.get("function", call)
    arguments: Any = function.get("arguments", {})
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # not JSON: shown as the string it is
            arguments = json.loads(arguments)
    body = _dumps({"name": function.get("name"), "arguments": arguments})
    return f"<tool_call>\n{body}\n</tool_call>"


def tools_prompt(tools: list[dict[str, Any]]) -> str:
    """The tools block of the system turn, as Qwen2.5's chat template writes it."""
    return _TOOLS_HEAD + "".join("\n" + _dumps(t) for t in tools) + _TOOLS_TAIL


def decode_arguments(messages: list[Any]) -> list[Any]:
    """``messages`` with every tool call's ``arguments`` as the JSON value its string
    holds (the form chat templates expect); arguments that are not JSON stay strings.
    The messages and calls are copied; others are returned as they are."""
    out = []
    for message in messages:
        calls = message.get("tool_calls") if isinstance(message, Mapping) else None
        if not calls:
            out.append(message)
            continue
        decoded = []
        for call in calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            if not isinstance(function, Mapping):
                decoded.append(call)
                continue
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                try:
                    value = json.loads(arguments)
                except ValueError:
                    value = arguments
                call = {**call, "function": {**function, "arguments": value}}
            decoded.append(call)
        out.append({**message, "tool_calls": decoded})
    return out
