"""Plain text: numbered blocks, one-line headers, optional wrapping, one final newline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qudata.pack import PlainTextFormatter


def plain(docs: list[Any], **options: Any) -> str:
    return PlainTextFormatter().format_documents(docs, **options)


def test_spec_documents_exact_bytes(spec_docs: list[dict[str, Any]], spec_plain: str) -> None:
    assert plain(spec_docs, separator="\n---\n", include_headers=True) == spec_plain


def test_defaults_equal_spec_options(spec_docs: list[dict[str, Any]], spec_plain: str) -> None:
    assert plain(spec_docs) == spec_plain


def test_missing_header_values_are_left_out() -> None:
    assert plain([{"text": "Body."}]) == "=== Document 1 ===\n\nBody.\n"
    assert plain([{"text": "Body.", "quality_score": 0.9}]) == (
        "=== Document 1 ===\nQuality: 0.90\n\nBody.\n"
    )
    assert plain([{"text": "Body.", "source": "s.txt", "topics": []}]) == (
        "=== Document 1 ===\nSource: s.txt\n\nBody.\n"
    )


@pytest.mark.parametrize(
    ("score", "shown"), [(0.5, "0.50"), (1, "1.00"), (0.999, "1.00"), (0.0, "0.00")]
)
def test_quality_has_two_decimals(score: float, shown: str) -> None:
    assert f"\nQuality: {shown}\n" in plain([{"text": "B.", "quality_score": score}])


def test_newline_in_header_value_becomes_space() -> None:
    out = plain([{"text": "B.", "source": "a\nb.pdf", "topics": ["x\ny", "z"]}])
    assert out == "=== Document 1 ===\nSource: a b.pdf\nTopics: x y, z\n\nB.\n"


def test_crlf_in_header_value_becomes_one_space() -> None:
    out = plain([{"text": "B.", "source": "a\r\nb.pdf"}])
    assert "\nSource: a b.pdf\n" in out


def test_no_wrapping_by_default() -> None:
    long_line = " ".join(["word"] * 100)
    assert plain([{"text": long_line}], include_headers=False) == long_line + "\n"


def test_max_line_length_wraps_at_word_boundaries() -> None:
    text = "The quick brown fox jumps over the lazy dog and keeps on running far away"
    out = plain([{"text": text}], include_headers=False, max_line_length=20)
    lines = out.rstrip("\n").split("\n")
    assert len(lines) > 1
    assert all(len(line) <= 20 for line in lines)
    assert " ".join(lines).split() == text.split()  # no word cut or lost


def test_long_token_stays_whole() -> None:
    url = "https://example.com/" + "a" * 60 + "/index.html"
    out = plain([{"text": f"See {url} for details."}], include_headers=False, max_line_length=20)
    lines = out.rstrip("\n").split("\n")
    assert url in lines
    assert lines == ["See", url, "for details."]


def test_wrapping_keeps_paragraph_breaks() -> None:
    text = "one two three four five six\n\nseven eight"
    out = plain([{"text": text}], include_headers=False, max_line_length=10)
    assert out == "one two\nthree four\nfive six\n\nseven\neight\n"


def test_include_headers_false() -> None:
    out = plain(
        [{"text": "First.", "source": "a"}, {"text": "Second.", "quality_score": 0.1}],
        include_headers=False,
    )
    assert out == "First.\n\n---\n\nSecond.\n"
    assert "===" not in out and "Source:" not in out


def test_custom_separator() -> None:
    out = plain([{"text": "A"}, {"text": "B"}], separator="***", include_headers=False)
    assert out == "A\n***\nB\n"


def test_trailing_newlines_in_text_do_not_double_up() -> None:
    out = plain([{"text": "A\n\n"}, {"text": "B\n"}], include_headers=False)
    assert out == "A\n\n---\n\nB\n"
    assert out.endswith("B\n") and not out.endswith("\n\n")


def test_empty_documents_are_dropped_and_numbering_has_no_gap() -> None:
    formatter = PlainTextFormatter()
    out = formatter.format_documents([{"text": "A"}, {"text": "  "}, {"text": "C"}])
    assert "=== Document 1 ===" in out and "=== Document 2 ===\n\nC\n" in out
    assert "Document 3" not in out
    assert formatter.stats.dropped == {"empty_text": 1}


def test_no_documents_gives_empty_text() -> None:
    assert plain([]) == ""


def test_conversation_is_shown_with_roles() -> None:
    row = {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}
    assert plain([row], include_headers=False) == "user: Q?\n\nassistant: A.\n"


def test_returns_str_and_file_has_same_bytes(
    tmp_path: Path, spec_docs: list[dict[str, Any]]
) -> None:
    formatter = PlainTextFormatter()
    text = formatter.format_documents(spec_docs, separator="\n---\n", include_headers=True)
    assert isinstance(text, str)
    path = tmp_path / "o.txt"
    stats = formatter.export_to_file(spec_docs, path, separator="\n---\n", include_headers=True)
    assert path.read_bytes() == text.encode("utf-8")
    assert stats.bytes == len(text.encode("utf-8"))


def test_non_ascii_is_written_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "o.txt"
    PlainTextFormatter().export_to_file([{"text": "Grüße 👋", "source": "köln.md"}], path)
    assert path.read_bytes() == "=== Document 1 ===\nSource: köln.md\n\nGrüße 👋\n".encode()
