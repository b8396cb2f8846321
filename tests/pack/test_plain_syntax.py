"""Plain text reads back: the escaping rule, read_plain, and a hypothesis round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qudata.errors import ConfigError, InputError
from qudata.pack import PlainTextFormatter
from qudata.pack.plain import read_plain
from qudata.pack.plain_rules import validate_plain_text
from qudata.pack.plain_syntax import parse_plain

NO_TOKENIZER = {"quality": {"tokenizer": "none"}}


def plain(docs: list[Any], **options: Any) -> str:
    return PlainTextFormatter(NO_TOKENIZER).format_documents(docs, **options)


def test_structural_content_lines_get_a_backslash() -> None:
    text = "a\n---\n=== Document 9 ===\nSource: x\n\\tail\n--- not alone"
    out = plain([{"text": text}])
    assert out == (
        "=== Document 1 ===\n\na\n\\---\n\\=== Document 9 ===\n\\Source: x\n\\\\tail\n"
        "--- not alone\n"
    )
    (block,) = parse_plain(out)
    assert block.content == text and block.number == 1 and block.headers == {}


def test_read_plain_gives_headers_and_content(tmp_path: Path) -> None:
    docs = [
        {"text": "One\n\n---\n\nrule", "source": "a.pdf", "quality_score": 0.855, "topics": ["x"]},
        {"text": "Two"},
    ]
    path = tmp_path / "o.txt"
    PlainTextFormatter(NO_TOKENIZER).export_to_file(docs, path)
    blocks = read_plain(path)
    assert [(b.number, b.headers, b.content, b.line) for b in blocks] == [
        (1, {"Source": "a.pdf", "Quality": "0.85", "Topics": "x"}, "One\n\n---\n\nrule", 1),
        (2, {}, "Two", 14),
    ]


def test_headerless_blank_separator_escapes_blank_lines() -> None:
    docs = [{"text": "a\n\nb"}, {"text": "\\"}, {"text": "c"}]
    out = plain(docs, include_headers=False, separator="")
    assert out == "a\n\\\nb\n\n\\\\\n\nc\n"
    assert [b.content for b in parse_plain(out, "", headers=False)] == ["a\n\nb", "\\", "c"]


@pytest.mark.parametrize("separator", ["\\\\", "=== Document 3 ===", "x\n\\y"])
def test_separators_that_look_like_escapes_or_headers_are_refused(separator: str) -> None:
    with pytest.raises(ConfigError, match="separator"):
        plain([{"text": "a"}], separator=separator)


def test_broken_layout_is_an_input_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"=== Document 1 ===\nSource: a\nNotes: b\n\nText\n")
    with pytest.raises(InputError, match=r"bad\.txt:3: not a header line"):
        read_plain(path)


LINE_PIECES = st.sampled_from(
    ["---", "", "\\", "\\---", "=== Document 2 ===", "Source: s", "Quality: 0.5", "Topics: t",
     "#####", "***", " ", "\r", "a\r", "\u2028", "x\u2028---", "\u0085", "\x0b", "\x0c",
     "\x1c", "\u2029", "word", "é日本"]
)  # fmt: skip
CONTENT = st.lists(
    st.one_of(LINE_PIECES, st.text(st.characters(codec="utf-8", exclude_characters="\n"))),
    min_size=1,
    max_size=8,
).map("\n".join)
VALUE = st.text(st.characters(codec="utf-8"), min_size=1, max_size=10)
SEPARATORS = st.sampled_from(["\n---\n", "---", "#####", "\n", "", "\n\n***\n\n", " ", "\r\n"])


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(CONTENT, min_size=1, max_size=5),
    sources=st.lists(st.none() | VALUE, min_size=5, max_size=5),
    separator=SEPARATORS,
    headers=st.booleans(),
)
def test_any_content_reads_back_exactly(
    texts: list[str], sources: list[str | None], separator: str, headers: bool
) -> None:
    docs = [
        {"text": t, **({"source": s} if s is not None else {})}
        for t, s in zip(texts, sources, strict=False)
    ]
    kept = [d for d in docs if d["text"].rstrip("\n").strip()]
    out = plain(docs, separator=separator, include_headers=headers)
    blocks = parse_plain(out, separator)
    # the file's text ends with one newline: trailing newlines of a text are not written
    assert [b.content for b in blocks] == [d["text"].rstrip("\n") for d in kept]
    if headers and kept:
        assert [b.number for b in blocks] == list(range(1, len(kept) + 1))
        shown = [" ".join(d["source"].splitlines()) if d.get("source") else None for d in kept]
        assert [b.headers.get("Source") for b in blocks] == shown
    assert validate_plain_text(out, separator=separator) == []
