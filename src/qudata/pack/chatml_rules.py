"""The rules of a ChatML record: messages, roles, turns, tools, token budgets.

>>> [p.code for p in validate_chatml({"messages": [{"role": "user", "content": "Hi"}]})]
['no_assistant_message']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from qudata.models import json_kind
from qudata.normalize.problems import conversation_problems
from qudata.quality.problems import (
    FileRules,
    FileValidation,
    Problem,
    add_hints,
    has_surrogate,
    make_problem,
)
from qudata.quality.problems import hygiene as string_hygiene

__all__ = [
    "ChatMLRules",
    "check_chatml",
    "message_rules",
    "record_rules",
    "validate_chatml",
]

_ROLES = ("system", "user", "assistant", "tool")
_MESSAGE_KEYS = frozenset(
    {"role", "content", "reasoning_content", "name", "weight", "tool_calls", "tool_call_id"}
)
#: Parquet writes null for a message key a message does not have
_OPTIONAL_KEYS = ("name", "weight", "tool_calls", "tool_call_id")


# the problem codes of a ChatML record, with their hints
add_hints(
    {
        "missing_messages": 'add a "messages" list',
        "chat_markup": "a tokenizer reads chat markup in content as a real turn marker; "
        "qudata pack escapes it (pack.chatml.markup: escape, strip or drop)",
        "messages_not_list": '"messages" must be a list of message objects',
        "empty_conversation": '"messages" must hold at least one message',
        "message_not_object": 'a message is an object such as {"role": "user", "content": "..."}',
        "missing_role": 'add "role": one of system, user, assistant, tool',
        "unknown_role": "use one of the roles system, user, assistant, tool",
        "missing_content": 'add "content" (a string)',
        "content_not_string": "content must be a string (null only on an assistant message with "
        "tool_calls)",
        "unknown_key": "a message may only have role, content, reasoning_content, name, weight, "
        "tool_calls, tool_call_id",
        "bad_reasoning": "reasoning_content must be a string and only appears on assistant "
        "messages",
        "bad_weight": "weight must be 0 or 1 and only appears on assistant messages",
        "bad_name": "name must be a string",
        "bad_tool_calls": "tool_calls must be a list and only appears on assistant messages",
        "bad_tool_call_id": "tool_call_id must be a string and only appears on tool messages",
        "no_assistant_message": "a training conversation needs at least one assistant message",
        "system_not_first": "a system message comes first, and only there",
        "broken_alternation": "after the system message, user and assistant take turns; tool "
        "messages follow an assistant message with tool_calls",
        "metadata_not_object": '"metadata" must be an object',
        "bad_tools": 'tools must be a list of {"type": "function", "function": {"name": ...}}',
        "ends_on_user": "a training conversation ends with an answer, not a user turn",
        "too_many_tokens": "shorten the message or raise the token limit",
    }
)


def message_rules(msg: Any, path: str) -> list[Problem]:
    """The rules of one ChatML message."""
    if not isinstance(msg, dict):
        return [make_problem("message_not_object", path, f"the message is {json_kind(msg)}")]
    out = [
        make_problem("unknown_key", f"{path}.{key}", f"unknown message key {key!r}")
        for key in msg
        if key not in _MESSAGE_KEYS
    ]
    role = msg.get("role")
    if "role" not in msg:
        out.append(make_problem("missing_role", f"{path}.role", "the message has no role"))
    elif role not in _ROLES:
        shown = repr(role) if isinstance(role, str) else json_kind(role)
        out.append(make_problem("unknown_role", f"{path}.role", f"unknown role {shown}"))
    calls = role == "assistant" and bool(msg.get("tool_calls"))
    if "content" not in msg:
        if not calls:
            out.append(
                make_problem("missing_content", f"{path}.content", "the message has no content")
            )
    elif not isinstance(msg["content"], str) and not (msg["content"] is None and calls):
        kind = json_kind(msg["content"])
        out.append(make_problem("content_not_string", f"{path}.content", f"content is {kind}"))
    # an optional key holding null is absent: an output with one schema writes null where
    # a message has no such key (Arrow readers show absent keys as None too)
    if msg.get("weight") is not None:
        weight = msg["weight"]
        if role != "assistant":
            out.append(make_problem("bad_weight", f"{path}.weight", f"weight on a {role} message"))
        elif type(weight) not in (int, float) or weight not in (0, 1):
            out.append(make_problem("bad_weight", f"{path}.weight", f"weight is {weight!r}"))
    reasoning = msg.get("reasoning_content")
    if reasoning is not None and (role != "assistant" or not isinstance(reasoning, str)):
        shown = f"reasoning_content ({json_kind(reasoning)}) on a {role} message"
        out.append(make_problem("bad_reasoning", f"{path}.reasoning_content", shown))
    if msg.get("name") is not None and not isinstance(msg["name"], str):
        out.append(make_problem("bad_name", f"{path}.name", f"name is {json_kind(msg['name'])}"))
    if msg.get("tool_calls") is not None and (
        role != "assistant" or not isinstance(msg["tool_calls"], list)
    ):
        kind = json_kind(msg["tool_calls"])
        out.append(
            make_problem(
                "bad_tool_calls", f"{path}.tool_calls", f"tool_calls ({kind}) on a {role} message"
            )
        )
    if msg.get("tool_call_id") is not None and (
        role != "tool" or not isinstance(msg["tool_call_id"], str)
    ):
        kind = json_kind(msg["tool_call_id"])
        out.append(
            make_problem(
                "bad_tool_call_id",
                f"{path}.tool_call_id",
                f"tool_call_id ({kind}) on a {role} message",
            )
        )
    return out


_CONVERSATION_MESSAGES = {
    "empty_content": "a message has no text",
    "system_not_first": "a system message after the first",
    "broken_alternation": "the roles do not take turns",
}


#: A conversation code is not repeated when a message check already said the same.
_SAID_BY = {
    "unknown_role": {"missing_role", "unknown_role"},
    "empty_content": {"missing_content", "content_not_string"},
    "broken_alternation": {"missing_role", "unknown_role"},  # turns of unknown roles
}


def _conversation_rules(messages: list[dict[str, Any]], reported: set[str]) -> list[Problem]:
    """The rules ``qudata pack`` drops conversations by
    (:func:`qudata.normalize.problems.conversation_problems`), as problems: one rule set."""
    return [
        make_problem(code, "messages", _CONVERSATION_MESSAGES.get(code, code))
        for code in conversation_problems(messages)
        if code not in reported and not _SAID_BY.get(code, set()) & reported
    ]


def check_chatml(
    record: Any,
    max_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
    *,
    hygiene: bool = True,
) -> tuple[list[Problem], list[int]]:
    """:func:`validate_chatml`, plus the token count of each string content (when counted).

    ``hygiene=False`` skips the walk for lone surrogates and non-finite numbers, for
    callers whose JSON encoder refuses both anyway (``qudata pack``)."""
    counts: list[int] = []
    if not isinstance(record, dict):
        return [make_problem("not_an_object", "$", f"the record is {json_kind(record)}")], counts
    out: list[Problem] = []
    messages = record.get("messages")
    if "messages" not in record:
        out.append(make_problem("missing_messages", "messages", 'the record has no "messages"'))
    elif not isinstance(messages, list):
        kind = json_kind(messages)
        out.append(make_problem("messages_not_list", "messages", f'"messages" is {kind}'))
    elif not messages:
        out.append(make_problem("empty_conversation", "messages", '"messages" is empty'))
    else:
        for i, msg in enumerate(messages):
            out.extend(message_rules(msg, f"messages[{i}]"))
            content = msg.get("content") if isinstance(msg, dict) else None
            if count_tokens is not None and isinstance(content, str):
                if has_surrogate(content):
                    continue
                n = count_tokens(content)
                counts.append(n)
                if max_tokens is not None and n > max_tokens:
                    out.append(
                        make_problem(
                            "too_many_tokens",
                            f"messages[{i}].content",
                            f"{n} tokens > {max_tokens}",
                        )
                    )
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            out.append(make_problem("no_assistant_message", "messages", "no assistant message"))
        if all(isinstance(m, dict) for m in messages):
            out.extend(_conversation_rules(messages, {p.code for p in out}))
    out.extend(record_rules(record))
    if hygiene:
        out.extend(string_hygiene(record))
    return out, counts


def record_rules(record: dict[str, Any]) -> list[Problem]:
    """``metadata`` and ``tools``, the same in ChatML and preference records."""
    out = []
    if "metadata" in record and not isinstance(record["metadata"], dict):
        kind = json_kind(record["metadata"])
        out.append(make_problem("metadata_not_object", "metadata", f'"metadata" is {kind}'))
    tools = record.get("tools")
    if "tools" in record and not (
        isinstance(tools, list)
        and all(
            isinstance(t, dict)
            and t.get("type") == "function"
            and isinstance(t.get("function"), dict)
            and isinstance(t["function"].get("name"), str)
            for t in tools
        )
    ):
        out.append(make_problem("bad_tools", "tools", "tools are not OpenAI function schemas"))
    return out


def validate_chatml(
    record: Any,
    *,
    max_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
    hygiene: bool = True,
) -> list[Problem]:
    """The OpenAI chat fine-tuning rules; ``too_many_tokens`` needs both token arguments."""
    return check_chatml(record, max_tokens, count_tokens, hygiene=hygiene)[0]


def _markup(record: Any) -> list[Problem]:
    """Message contents holding ChatML markup, which ``qudata pack`` never writes (its
    ``pack.chatml.markup`` policy escapes, strips or drops them)."""
    from qudata.pack.markup import CHATML_MARKERS

    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list):
        return []
    out = []
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and "<|" in content:
            found = [m for m in CHATML_MARKERS if m in content]
            if found:
                path, what = f"messages[{i}].content", f"holds {', '.join(found)}"
                out.append(make_problem("chat_markup", path, what))
    return out


class ChatMLRules(FileRules):
    """``qudata validate --format chatml``: each record's rules, and with a token
    counter the total and the largest message's tokens."""

    counts_tokens: ClassVar[bool] = True

    def start(self, result: FileValidation) -> None:
        if self.options.count_tokens is not None:
            result.tokens_total = result.max_message_tokens = 0

    def check(self, record: Any, line: int, result: FileValidation) -> list[Problem]:
        found, counts = check_chatml(record, self.options.max_tokens, self.options.count_tokens)
        if counts and result.tokens_total is not None:
            result.tokens_total += sum(counts)
            result.max_message_tokens = max(result.max_message_tokens or 0, *counts)
        return found + _markup(record)

    def parquet_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A null optional message key counts as absent."""
        messages = row.get("messages")
        if isinstance(messages, list):
            row["messages"] = [
                {k: v for k, v in m.items() if v is not None or k not in _OPTIONAL_KEYS}
                if isinstance(m, dict)
                else m
                for m in messages
            ]
        return row
