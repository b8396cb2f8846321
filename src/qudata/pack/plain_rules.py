"""The rules of plain text: numbered blocks, header lines, escapes, one final newline.

Blocks are split as :func:`qudata.pack.plain_syntax.read_plain` splits them; every
problem carries its file line.

    >>> [p.code for p in validate_plain_text("=== Document 1 ===\\n\\nHi")]
    ['missing_final_newline']
"""

from __future__ import annotations

import re
from typing import ClassVar

from qudata.pack.plain_syntax import PLAIN_SEPARATOR, split_blocks, unescaped_lines
from qudata.quality.problems import FileRules, Problem, add_hints, has_surrogate, make_problem

__all__ = ["PlainRules", "check_plain_text", "validate_plain_block", "validate_plain_text"]

_BLOCK_HEADER = re.compile(r"=== Document ([1-9][0-9]*) ===")
_HEADERS = ("Source: ", "Quality: ", "Topics: ")
_QUALITY = re.compile(r"-?[0-9]+\.[0-9]{2}")


# the problem codes of a plain-text file, with their hints
add_hints(
    {
        "bad_block_header": 'a block starts with a line "=== Document N ==="',
        "wrong_document_number": "documents are numbered 1, 2, 3, ... in order",
        "bad_header_line": "header lines are 'Source: ...', 'Quality: 0.85', 'Topics: ...'",
        "header_out_of_order": "header lines come once each, in the order Source, Quality, Topics",
        "missing_blank_line": "a blank line separates the header lines from the content",
        "unescaped_line": "a content line equal to a separator line, a block header or a header "
        "line needs a leading backslash (a line starting with a backslash gets another)",
        "missing_final_newline": "end the file with one newline",
        "extra_final_newline": "end the file with exactly one newline",
    }
)


def validate_plain_block(
    block: str, number: int | None = None, *, headers: bool = True, line: int = 1
) -> list[Problem]:
    """The rules of one plain-text block (``number``: the document number it must carry).

    ``line`` is the block's first line in its file; problems carry file line numbers.
    """
    out: list[Problem] = []
    if has_surrogate(block):
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
    text: str, separator: str = PLAIN_SEPARATOR, *, headers: bool | None = None
) -> tuple[list[Problem], int]:
    """:func:`validate_plain_text`, plus the number of blocks. Blocks are split as
    :func:`qudata.pack.plain.read_plain` splits them; ``headers`` ``None``: detected."""
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
    text: str, *, separator: str = PLAIN_SEPARATOR, headers: bool | None = None
) -> list[Problem]:
    """The plain-text layout: numbered blocks, header lines, one final newline; with lines.

    With ``headers=False`` (``include_headers: false``) blocks are only content.
    """
    return check_plain_text(text, separator, headers=headers)[0]


class PlainRules(FileRules):
    """``qudata validate --format plain``: the whole text (``separator``, ``headers``)."""

    reads: ClassVar[str] = "text"

    def check_text(self, text: str) -> tuple[list[Problem], int]:
        separator = self.options.separator or PLAIN_SEPARATOR
        return check_plain_text(text, separator, headers=self.options.headers)
