"""The record rules of each output format, in one place.

``qudata pack`` applies them to every record it writes and ``qudata validate``
to existing files (:func:`validate_file`, see :mod:`qudata.quality.validate_files`).
Every rule broken is a :class:`Problem` with a stable snake_case ``code`` (the
keys of :data:`HINTS`), a field ``path`` such as ``messages[2].role`` (``$`` is
the whole record), a message and a hint.

    >>> [p.code for p in validate_chatml({"messages": [{"role": "user", "content": "Hi"}]})]
    ['no_assistant_message']
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qudata.models import json_kind
from qudata.normalize.problems import conversation_problems
from qudata.quality.validate_files import FileValidation, validate_file

__all__ = [
    "HINTS",
    "FileValidation",
    "JSONLSchemaTracker",
    "Problem",
    "check_chatml",
    "check_plain_text",
    "json_kind",
    "make_problem",
    "validate_chatml",
    "validate_file",
    "validate_jsonl",
    "validate_plain_block",
    "validate_plain_text",
    "validate_preference",
]

#: Every problem code, with the hint that comes with it.
HINTS: dict[str, str] = {
    # any JSON record
    "not_an_object": "each line must hold one JSON object",
    "lone_surrogate": "replace unpaired UTF-16 surrogates (\\ud800-\\udfff); they are not UTF-8",
    "non_finite_number": "JSON has no NaN or Infinity; write null or a finite number",
    # ChatML
    "missing_messages": 'add a "messages" list',
    "messages_not_list": '"messages" must be a list of message objects',
    "empty_conversation": '"messages" must hold at least one message',
    "message_not_object": 'a message is an object such as {"role": "user", "content": "..."}',
    "missing_role": 'add "role": one of system, user, assistant, tool',
    "unknown_role": "use one of the roles system, user, assistant, tool",
    "missing_content": 'add "content" (a string)',
    "content_not_string": "content must be a string (null only on an assistant message with "
    "tool_calls)",
    "unknown_key": "a message may only have role, content, name, weight, tool_calls, tool_call_id",
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
    # preference
    "missing_preference_field": 'a preference record has "prompt", "chosen" and "rejected", '
    "each a non-empty list of messages",
    "prompt_not_user_last": "the prompt ends with a user turn",
    "answer_not_assistant": "chosen and rejected start with an assistant message",
    "too_many_tokens": "shorten the message or raise the token limit",
    # JSONL schema
    "missing_key": "every row should have the same keys (write null for a missing value)",
    "key_missing_on_earlier_rows": "every row should have the same keys (write null for a "
    "missing value)",
    "type_changed": "give a key one JSON type in every row (or null); Arrow-based loaders fail "
    "otherwise",
    # plain text
    "bad_block_header": 'a block starts with a line "=== Document N ==="',
    "wrong_document_number": "documents are numbered 1, 2, 3, ... in order",
    "bad_header_line": "header lines are 'Source: ...', 'Quality: 0.85', 'Topics: ...'",
    "header_out_of_order": "header lines come once each, in the order Source, Quality, Topics",
    "missing_blank_line": "a blank line separates the header lines from the content",
    "empty_content": "a message or block needs non-blank content (an assistant message with "
    "tool_calls may have none)",
    "unescaped_line": "a content line equal to a separator line, a block header or a header "
    "line needs a leading backslash (a line starting with a backslash gets another)",
    "missing_final_newline": "end the file with one newline",
    "extra_final_newline": "end the file with exactly one newline",
    # files
    "blank_line": "remove blank lines; every line holds one record",
    "invalid_json": "each line must be one complete JSON value",
    "invalid_utf8": "the file must be UTF-8",
    "unreadable": "the file is truncated or corrupt (check the compression)",
    "line_too_long": "split the record, or it is not JSON Lines (a line over 64 MB)",
}

_ROLES = ("system", "user", "assistant", "tool")
_MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "tool_calls", "tool_call_id"})
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule: ``code`` (a key of :data:`HINTS`), field ``path``, ``line`` in a file."""

    code: str
    path: str
    message: str
    hint: str
    line: int | None = None


def make_problem(code: str, path: str, message: str, line: int | None = None) -> Problem:
    return Problem(code, path, message, HINTS[code], line)


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:  # encoding runs at memory speed; a regex scan is several times slower
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.search(text) is not None
    return False


def _hygiene(record: Any, root: str = "") -> list[Problem]:
    """Lone surrogates in strings and keys, and non-finite numbers, anywhere in ``record``."""
    problems: list[Problem] = []
    stack: list[tuple[str, Any]] = [(root, record)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _has_surrogate(value):
                problems.append(make_problem("lone_surrogate", path or "$", "a lone surrogate"))
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append(
                    make_problem("non_finite_number", path or "$", f"{value} is not JSON")
                )
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                sub = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and _has_surrogate(key):
                    problems.append(
                        make_problem("lone_surrogate", sub, "a lone surrogate in a key")
                    )
                stack.append((sub, item))
        elif isinstance(value, list | tuple):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(value))))
    return problems


def _message(msg: Any, path: str) -> list[Problem]:
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
            out.extend(_message(msg, f"messages[{i}]"))
            content = msg.get("content") if isinstance(msg, dict) else None
            if count_tokens is not None and isinstance(content, str):
                if _has_surrogate(content):
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
    out.extend(_record_rules(record))
    if hygiene:
        out.extend(_hygiene(record))
    return out, counts


def _record_rules(record: dict[str, Any]) -> list[Problem]:
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


def validate_preference(record: Any, *, hygiene: bool = True) -> list[Problem]:
    """The rules of a TRL conversational preference record: ``prompt`` (ending with a
    user turn), ``chosen`` and ``rejected`` (starting with an assistant message)."""
    if not isinstance(record, dict):
        return [make_problem("not_an_object", "$", f"the record is {json_kind(record)}")]
    out: list[Problem] = []
    for key in ("prompt", "chosen", "rejected"):
        value = record.get(key)
        if not isinstance(value, list) or not value:
            shown = json_kind(value) if key in record else "missing"
            out.append(make_problem("missing_preference_field", key, f'"{key}" is {shown}'))
            continue
        for i, msg in enumerate(value):
            out.extend(_message(msg, f"{key}[{i}]"))
        edge = value[-1] if key == "prompt" else value[0]
        role = edge.get("role") if isinstance(edge, dict) else None
        if key == "prompt" and role != "user":
            out.append(make_problem("prompt_not_user_last", key, f"the prompt ends with {role!r}"))
        elif key != "prompt" and role != "assistant":
            out.append(make_problem("answer_not_assistant", key, f'"{key}" starts with {role!r}'))
    out.extend(_record_rules(record))
    if hygiene:
        out.extend(_hygiene(record))
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


def validate_jsonl(record: Any) -> list[Problem]:
    """The rules of one general JSONL record: an object, clean strings, finite numbers."""
    if not isinstance(record, dict):
        return [make_problem("not_an_object", "$", f"the record is {json_kind(record)}")]
    return _hygiene(record)


class JSONLSchemaTracker:
    """Fed the records of one file in order, reports keys that come and go or change type.

    Top-level keys must be on every row (``missing_key``; keys first seen late are
    summed up by :meth:`finish` as ``key_missing_on_earlier_rows``). A key keeps
    the JSON type it first had, at the top and inside ``metadata`` (``type_changed``);
    null fits any type and integers and floats are both numbers.
    """

    def __init__(self) -> None:
        self.rows = 0
        self._first: dict[str, tuple[int, int | None]] = {}  # key -> (row index, line)
        self._kinds: dict[str, str] = {}

    def check(self, record: Any, *, line: int | None = None) -> list[Problem]:
        """The schema problems of the next record (a non-object is skipped)."""
        if not isinstance(record, dict):
            return []
        out = [
            make_problem("missing_key", key, f"no key {key!r}, which earlier rows have", line)
            for key in self._first
            if key not in record
        ]
        for key, value in record.items():
            self._first.setdefault(key, (self.rows, line))
            self._kind(key, value, out, line)
        meta = record.get("metadata")
        if isinstance(meta, dict):
            for key, value in meta.items():
                self._kind(f"metadata.{key}", value, out, line)
        self.rows += 1
        return out

    def _kind(self, path: str, value: Any, out: list[Problem], line: int | None) -> None:
        kind = json_kind(value)
        if kind == "null":
            return
        first = self._kinds.setdefault(path, kind)
        if first != kind:
            out.append(make_problem("type_changed", path, f"was {first}, now {kind}", line))

    def finish(self) -> list[Problem]:
        """One ``key_missing_on_earlier_rows`` per key that the first rows lack."""
        return [
            make_problem(
                "key_missing_on_earlier_rows",
                key,
                f"key {key!r} first appears on row {row + 1}; the {row} rows before lack it",
                line,
            )
            for key, (row, line) in self._first.items()
            if row > 0
        ]


_BLOCK_HEADER = re.compile(r"=== Document ([1-9][0-9]*) ===")
_HEADERS = ("Source: ", "Quality: ", "Topics: ")
_QUALITY = re.compile(r"-?[0-9]+\.[0-9]{2}")


def validate_plain_block(
    block: str, number: int | None = None, *, headers: bool = True, line: int = 1
) -> list[Problem]:
    """The rules of one plain-text block (``number``: the document number it must carry).

    ``line`` is the block's first line in its file; problems carry file line numbers.
    """
    out: list[Problem] = []
    if _has_surrogate(block):
        out.append(make_problem("lone_surrogate", "$", "a lone surrogate", line))
    lines = block.split("\n")
    body = 0
    if headers:
        match = _BLOCK_HEADER.fullmatch(lines[0])
        if match is None:
            out.append(make_problem("bad_block_header", "header", f"{lines[0][:60]!r}", line))
        elif number is not None and int(match.group(1)) != number:
            out.append(
                make_problem(
                    "wrong_document_number",
                    "header",
                    f"document {match.group(1)}, expected {number}",
                    line,
                )
            )
        last = -1
        for i in range(1, len(lines) + 1):
            text = lines[i] if i < len(lines) else None
            if text == "":
                body = i + 1
                break
            kind = next((k for k, h in enumerate(_HEADERS) if text and text.startswith(h)), None)
            if text is None or kind is None:
                out.append(
                    make_problem(
                        "missing_blank_line",
                        "header",
                        "no blank line after the header lines",
                        line + i - (text is None),
                    )
                )
                body = i
                break
            if kind <= last:
                out.append(make_problem("header_out_of_order", "header", text[:60], line + i))
            last = kind
            if kind == 1 and not _QUALITY.fullmatch(text[len(_HEADERS[1]) :]):
                out.append(
                    make_problem(
                        "bad_header_line",
                        "header",
                        f"{text[:60]!r}: quality needs two decimals",
                        line + i,
                    )
                )
    if not "\n".join(lines[body:]).strip():
        out.append(
            make_problem(
                "empty_content",
                "content",
                "the block has no content",
                line + min(body, len(lines) - 1),
            )
        )
    return out


def check_plain_text(
    text: str, separator: str = "\n---\n", *, headers: bool | None = None
) -> tuple[list[Problem], int]:
    """:func:`validate_plain_text`, plus the number of blocks. Blocks are split as
    :func:`qudata.pack.plain.read_plain` splits them; ``headers`` ``None``: detected."""
    from qudata.pack.plain_syntax import split_blocks, unescaped_lines

    if not text:
        return [], 0
    out: list[Problem] = []
    body = text[:-1] if text.endswith("\n") else text
    if not text.endswith("\n"):
        out.append(
            make_problem(
                "missing_final_newline",
                "$",
                "the text does not end with a newline",
                text.count("\n") + 1,
            )
        )
    elif body.endswith("\n"):
        first_blank = text.rstrip("\n").count("\n") + 2
        out.append(
            make_problem("extra_final_newline", "$", "the text ends with a blank line", first_blank)
        )
    has_headers, blocks = split_blocks(body + "\n", separator, headers=headers, loose=True)
    expected = 1
    for start, lines in blocks:
        block = "\n".join(lines)
        out.extend(validate_plain_block(block, expected, headers=has_headers, line=start))
        for i in unescaped_lines(lines, separator, headers=has_headers):
            out.append(make_problem("unescaped_line", "content", f"{lines[i][:60]!r}", start + i))
        match = _BLOCK_HEADER.match(block)
        expected = (int(match.group(1)) if match else expected) + 1
    out.sort(key=lambda p: p.line or 0)
    return out, len(blocks)


def validate_plain_text(
    text: str, *, separator: str = "\n---\n", headers: bool | None = None
) -> list[Problem]:
    """The plain-text layout: numbered blocks, header lines, one final newline; with lines.

    With ``headers=False`` (``include_headers: false``) blocks are only content.
    """
    return check_plain_text(text, separator, headers=headers)[0]
