"""Plain text: human-readable blocks for inspection and review.

Each block is ``=== Document N ===`` (N counts the blocks of one file), the
header lines (``Source``, ``Quality`` with two decimals, ``Topics``; a missing one
is left out), a blank line and the content. Blocks are joined by
``"\\n" + separator + "\\n"`` and the text ends with one ``"\\n"``. Content lines
that could be read as structure are escaped with a backslash, so :func:`read_plain`
parses a file back exactly (see :mod:`qudata.pack.plain_syntax`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import Field

from qudata.account import Drop
from qudata.models import Document
from qudata.normalize.problems import ends_on_user
from qudata.normalize.turns import message_text
from qudata.pack.base import Encoder, Formatter, Record
from qudata.pack.plain_rules import PlainRules, validate_plain_block
from qudata.pack.plain_syntax import (
    PLAIN_SEPARATOR,
    PlainBlock,
    check_separator,
    escape_content,
    read_plain,
)
from qudata.quality.problems import FileRules
from qudata.sections import Section

__all__ = ["PlainBlock", "PlainOptions", "PlainTextFormatter", "read_plain"]


class PlainOptions(Section):
    """``pack.plain``: human-readable blocks for inspection."""

    separator: str = Field(default=PLAIN_SEPARATOR, description="between blocks")
    include_headers: bool = Field(default=True, description="`=== Document N ===` and header lines")
    max_line_length: int | None = Field(
        default=None,
        gt=0,
        description="wrap content lines at word boundaries (none: no wrapping)",
    )


def _one_line(value: str) -> str:
    return " ".join(value.splitlines())


def wrap(text: str, width: int | None) -> str:
    """Wrap each line at word boundaries; a word longer than ``width`` stays whole."""
    if width is None:
        return text
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
        else:
            out.extend(
                textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False) or [""]
            )
    return "\n".join(out)


class PlainEncoder(Encoder):
    """Numbers the blocks of one file, joins them with the separator, ends with one newline."""

    def __init__(self, separator: str, *, numbered: bool = True) -> None:
        self._between = ("\n" + separator + "\n").encode("utf-8")
        self._numbered = numbered
        self._number = 0

    def encode(self, record: Record) -> bytes:
        """A block's bytes; ``record``: its text, or the text's UTF-8 bytes (map 2's part)."""
        # raises on a lone surrogate, before the count moves
        data = record if isinstance(record, bytes) else str(record).encode("utf-8")
        if self._numbered:
            data = f"=== Document {self._number + 1} ===\n".encode() + data
        self._number += 1
        return data if self._number == 1 else self._between + data

    def finish(self) -> bytes:
        return b"\n" if self._number else b""


class PlainTextFormatter(Formatter[PlainOptions]):
    """Plain text for debugging and manual review.

    Example::

        formatter = PlainTextFormatter()
        text_output = formatter.format_documents(documents, separator="\\n---\\n",
                                                 include_headers=True)
    """

    name: ClassVar[str] = "plain"
    extension: ClassVar[str] = ".txt"
    writes_text_bytes: ClassVar[bool] = True
    options_model: ClassVar[type[PlainOptions]] = PlainOptions
    file_rules: ClassVar[type[FileRules] | None] = PlainRules

    def format_document(
        self, doc: Document, opts: PlainOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        if doc.messages is not None:
            if ends_on_user(doc):
                return Drop("ends_on_user", "the conversation ends on a user turn")
            content = "\n\n".join(f"{m.get('role')}: {message_text(m)}" for m in doc.messages)
        else:
            content = doc.text
        content = content.rstrip("\n")  # the file ends with exactly one newline
        if not content.strip():
            return Drop("empty_text", "the document text is empty")
        if state.get("separator") != opts.separator:
            check_separator(opts.separator)
            state["separator"] = opts.separator
        content = escape_content(
            wrap(content, opts.max_line_length), opts.separator, headers=opts.include_headers
        )
        if not opts.include_headers:
            return [content]
        lines = []
        if doc.source:
            lines.append(f"Source: {_one_line(doc.source)}")
        if doc.quality_score is not None:
            lines.append(f"Quality: {doc.quality_score:.2f}")
        if doc.topics:
            lines.append(f"Topics: {_one_line(', '.join(doc.topics))}")
        lines.append("")
        lines.append(content)
        return ["\n".join(lines)]

    def validate(self, record: Record, state: dict[str, Any]) -> list[str]:
        headers = self.options.include_headers
        block = f"=== Document 1 ===\n{record}" if headers else str(record)
        return [p.code for p in validate_plain_block(block, None, headers=headers)]

    def encoder(self, opts: PlainOptions) -> Encoder:
        return PlainEncoder(opts.separator, numbered=opts.include_headers)

    def format_documents(self, documents: Iterable[Any], config: Any = None, **options: Any) -> Any:
        """The whole text, exactly as :meth:`export_to_file` writes it."""
        opts = self.resolve(config, **options)
        encoder = self.encoder(opts)
        parts = [encoder.encode(r) for r in self.iter_records(documents, **opts.model_dump())]
        parts.append(encoder.finish())
        return b"".join(parts).decode("utf-8")
