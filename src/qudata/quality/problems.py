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
    "add_hints",
    "has_surrogate",
    "hygiene",
    "make_problem",
]

#: Every problem code, with the hint that comes with it: here the codes of any record and
#: of files; each format's rules add theirs when their module is imported (:func:`add_hints`;
#: ``import qudata`` imports every registered format).
HINTS: dict[str, str] = {
    # any JSON record
    "not_an_object": "each line must hold one JSON object",
    "lone_surrogate": "replace unpaired UTF-16 surrogates (\\ud800-\\udfff); they are not UTF-8",
    "non_finite_number": "JSON has no NaN or Infinity; write null or a finite number",
    "empty_content": "a message or block needs non-blank content (an assistant message with "
    "tool_calls may have none)",
    # files
    "blank_line": "remove blank lines; every line holds one record",
    "invalid_json": "each line must be one complete JSON value",
    "invalid_utf8": "the file must be UTF-8",
    "unreadable": "the file is truncated or corrupt (check the compression)",
    "line_too_long": "split the record, or it is not JSON Lines (a line over 64 MB)",
}


def add_hints(hints: dict[str, str]) -> None:
    """Add the problem codes of a format's rules, with their hints (a code has one hint)."""
    for code, hint in hints.items():
        if HINTS.setdefault(code, hint) != hint:
            raise ValueError(f"problem code {code!r} already has another hint")


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
        """The problems of a whole text, and how many records it holds (rules with
        ``reads = "text"`` define it; record rules are never given a whole text)."""
        raise TypeError(f"{type(self).__name__} reads records, not a whole text")

    def parquet_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A Parquet row as the record it stands for (default: as it is)."""
        return row

    def finish(self, result: FileValidation) -> None:
        """Called after the last record: problems only the whole file shows."""
