"""What ``qudata validate`` and ``qudata pack`` say about a record: problems, with hints.

Every rule broken is a :class:`Problem` with a stable snake_case ``code`` (the
keys of :data:`HINTS`), a field ``path`` such as ``messages[2].role`` (``$`` is
the whole record), a message and a hint. The rules themselves live with their
formats (``pack/chatml_rules.py``, ...): each format names a :class:`FileRules`
class (``Formatter.file_rules``), which :func:`qudata.quality.validate.validate_file`
runs over every record of a file into a :class:`FileValidation`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "HINTS",
    "FileRules",
    "FileValidation",
    "Problem",
    "RuleOptions",
    "has_surrogate",
    "hygiene",
    "make_problem",
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
    "unknown_key": "a message may only have role, content, reasoning_content, name, weight, "
    "tool_calls, tool_call_id",
    "bad_reasoning": "reasoning_content must be a string and only appears on assistant messages",
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
    "missing_kto_field": 'a KTO record has "prompt" and "completion" (lists of messages) and '
    'a boolean "label"',
    "kto_prompt_not_user_last": "a KTO prompt ends with a user (or tool) turn",
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


def has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:  # encoding runs at memory speed; a regex scan is several times slower
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.search(text) is not None
    return False


def hygiene(record: Any, root: str = "") -> list[Problem]:
    """Lone surrogates in strings and keys, and non-finite numbers, anywhere in ``record``."""
    problems: list[Problem] = []
    stack: list[tuple[str, Any]] = [(root, record)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if has_surrogate(value):
                problems.append(make_problem("lone_surrogate", path or "$", "a lone surrogate"))
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append(
                    make_problem("non_finite_number", path or "$", f"{value} is not JSON")
                )
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                sub = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and has_surrogate(key):
                    problems.append(
                        make_problem("lone_surrogate", sub, "a lone surrogate in a key")
                    )
                stack.append((sub, item))
        elif isinstance(value, list | tuple):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(value))))
    return problems


@dataclass(frozen=True, slots=True)
class RuleOptions:
    """What ``qudata validate`` is told besides the format: ``max_tokens`` and
    ``count_tokens`` for token budgets, ``separator`` (``None``: the format's default)
    and ``headers`` (``None``: detected) for plain text. A format's rules take what
    they need."""

    max_tokens: int | None = None
    count_tokens: Callable[[str], int] | None = None
    separator: str | None = None
    headers: bool | None = None


@dataclass(slots=True)
class FileValidation:
    """The verdict on one file: records read and every problem found (each with its line).

    ``tokens_total`` and ``max_message_tokens`` are set for ChatML when tokens are counted.
    """

    path: str
    format: str
    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    tokens_total: int | None = None
    max_message_tokens: int | None = None

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def by_code(self) -> dict[str, int]:
        """How many problems of each code, sorted by code."""
        return dict(sorted(Counter(p.code for p in self.problems).items()))


class FileRules:
    """The rules of one format over one file (one object per file).

    ``reads = "records"``: each record (a JSON line, a JSON array's item, a Parquet
    row) goes to :meth:`check`; ``reads = "text"``: the whole text goes to
    :meth:`check_text`. ``counts_tokens``: the rules use ``options.count_tokens``
    (so ``qudata validate`` builds a token counter for them).
    """

    reads: ClassVar[str] = "records"
    counts_tokens: ClassVar[bool] = False

    def __init__(self, options: RuleOptions) -> None:
        self.options = options

    def start(self, result: FileValidation) -> None:
        """Called before the first record."""

    def check(self, record: Any, line: int, result: FileValidation) -> list[Problem]:
        """The problems of one record (``line``: its line, or its row or item number)."""
        return []

    def check_text(self, text: str) -> tuple[list[Problem], int]:
        """The problems of a whole text, and how many records it holds."""
        raise NotImplementedError

    def parquet_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A Parquet row as the record it stands for (default: as it is)."""
        return row

    def finish(self, result: FileValidation) -> None:
        """Called after the last record: problems only the whole file shows."""
