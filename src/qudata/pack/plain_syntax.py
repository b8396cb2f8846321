"""The plain-text layout, both ways: the escaping rule, and the reader that parses it back.

A file is lines ended by ``"\\n"`` (only ``"\\n"``: ``"\\r"``, U+2028, U+0085, U+000B
and the other characters :meth:`str.splitlines` also splits on are content). Blocks
are joined by ``"\\n" + separator + "\\n"``; with headers a block is
``=== Document N ===``, header lines (``Source: ``, ``Quality: ``, ``Topics: ``), a
blank line, then the content.

**Escaping.** A content line that could be read as structure gets a leading
backslash: a line equal to a non-blank line of the separator, a line matching
``=== Document N ===``, a line starting with ``Source: ``, ``Quality: `` or
``Topics: ``, and (only without headers, with a separator that has no visible line)
a blank line. A line that already starts with a backslash gets another. The reader
removes one leading backslash from every content line that has one, so every
content reads back exactly (wrapping with ``max_line_length`` is not reversible).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from qudata.errors import ConfigError, InputError

__all__ = [
    "PLAIN_SEPARATOR",
    "PlainBlock",
    "check_separator",
    "escape_content",
    "parse_plain",
    "read_plain",
    "split_blocks",
    "unescaped_lines",
]

#: The default separator between blocks (``pack.plain.separator``), written once here.
PLAIN_SEPARATOR = "\n---\n"
BLOCK_HEADER = re.compile(r"=== Document ([1-9][0-9]*) ===\n")
_BLOCK_START = re.compile(r"=+ *Document\b")
HEADER_PREFIXES = ("Source: ", "Quality: ", "Topics: ")
_HEADER_LINE = re.compile(r"=== Document [0-9]+ ===")


def _visible(separator: str) -> set[str]:
    return {line for line in separator.split("\n") if line}


def check_separator(separator: str) -> None:
    """Refuse a separator the escaping rule cannot keep apart from content."""
    for line in _visible(separator):
        if line.startswith("\\") or _HEADER_LINE.fullmatch(line):
            raise ConfigError(
                f"pack.plain.separator: the line {line!r} cannot be told apart from an "
                "escaped content line or a block header; choose another separator"
            )


def escape_content(content: str, separator: str, *, headers: bool) -> str:
    """``content`` with every line that could be read as structure escaped."""
    visible = _visible(separator)
    blank = not headers and not visible
    out = []
    for line in content.split("\n"):
        if (
            line.startswith("\\")
            or line in visible
            or _HEADER_LINE.fullmatch(line)
            or line.startswith(HEADER_PREFIXES)
            or (blank and line == "")
        ):
            line = "\\" + line
        out.append(line)
    return "\n".join(out)


def unescaped_lines(lines: list[str], separator: str, *, headers: bool) -> list[int]:
    """Indexes of content lines (of one block's lines) that the escaping rule would have
    escaped but are not: a reader cannot tell them from structure."""
    body = lines.index("") + 1 if headers and "" in lines else 0 if not headers else len(lines)
    visible = _visible(separator)
    return [
        i
        for i in range(body, len(lines))
        if lines[i] in visible
        or _HEADER_LINE.fullmatch(lines[i])
        or lines[i].startswith(HEADER_PREFIXES)
    ]


def _unescape(line: str) -> str:
    return line[1:] if line.startswith("\\") else line


@dataclass(frozen=True, slots=True)
class PlainBlock:
    """One document of a plain file: its number (``None`` without headers), its header
    lines as written (``{"Source": "a.pdf", "Quality": "0.85"}``), its content, and
    the file line it starts on."""

    number: int | None
    headers: dict[str, str] = field(default_factory=dict)
    content: str = ""
    line: int = 1


def split_blocks(
    text: str, separator: str = PLAIN_SEPARATOR, *, headers: bool | None = None, loose: bool = False
) -> tuple[bool, list[tuple[int, list[str]]]]:
    """``(headers, blocks)``: whether the file has headers (detected from its first line
    when ``headers`` is ``None``) and each block's first line number and raw lines.

    Blocks are split where the separator's lines stand between two blocks (before a
    ``=== Document N ===`` line, with headers): escaped content never holds them.
    ``loose``: any line starting ``=`` and ``Document`` starts a block (so a validator
    can report a malformed block header instead of merging the block).
    """
    start_line = _BLOCK_START if loose else BLOCK_HEADER
    if not text:
        return bool(headers), []
    lines = (text[:-1] if text.endswith("\n") else text).split("\n")
    if headers is None:
        headers = BLOCK_HEADER.match(lines[0] + "\n") is not None
    between = separator.split("\n")
    step = len(between)
    spans: list[tuple[int, int]] = []
    start, b = 0, 1
    while b + step < len(lines):
        if lines[b : b + step] == between and (
            not headers or start_line.match(lines[b + step] + "\n")
        ):
            spans.append((start, b))
            start = b + step
            b = start + 1
        else:
            b += 1
    spans.append((start, len(lines)))
    return headers, [(first + 1, lines[first:end]) for first, end in spans]


def parse_plain(
    text: str, separator: str = PLAIN_SEPARATOR, *, headers: bool | None = None, source: str = ""
) -> list[PlainBlock]:
    """The blocks of a plain text, headers and content exactly as written, escapes undone.

    Raises :class:`~qudata.errors.InputError` at the first line that breaks the layout
    (``qudata validate --format plain`` reports all of them).
    """
    has_headers, raw = split_blocks(text, separator, headers=headers)
    out = []
    for first, lines in raw:
        if not has_headers:
            out.append(PlainBlock(None, {}, "\n".join(map(_unescape, lines)), first))
            continue
        match = BLOCK_HEADER.match(lines[0] + "\n")
        if match is None:
            raise InputError(
                f"expected '=== Document N ===', got {lines[0][:60]!r}", source=source, line=first
            )
        found: dict[str, str] = {}
        body = None
        for i, line in enumerate(lines[1:], 1):
            if line == "":
                body = i + 1
                break
            name, sep, value = line.partition(": ")
            if not sep or f"{name}: " not in HEADER_PREFIXES:
                raise InputError(f"not a header line: {line[:60]!r}", source=source, line=first + i)
            found[name] = value
        if body is None:
            raise InputError("no blank line after the header lines", source=source, line=first)
        content = "\n".join(map(_unescape, lines[body:]))
        out.append(PlainBlock(int(match.group(1)), found, content, first))
    return out


def read_plain(
    path: str | os.PathLike[str], *, separator: str = PLAIN_SEPARATOR, headers: bool | None = None
) -> list[PlainBlock]:
    """Parse a plain-text file written by qudata back into its blocks.

    ``separator`` is the one it was written with (``pack.plain.separator``); ``headers``
    is detected from the first line unless given.

    Example::

        blocks = read_plain("out/plain/train-00000-of-00001.txt")
        blocks[0].headers["Source"], blocks[0].content
    """
    with open(path, "rb") as stream:
        data = stream.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"invalid UTF-8 at byte {exc.start}", source=os.fspath(path)) from exc
    return parse_plain(text, separator, headers=headers, source=os.fspath(path))
