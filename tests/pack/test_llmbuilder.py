"""LLMBuilder: UTF-8 text, one blank line between documents, no headers, a folder per split."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.pack.llmbuilder import LLMBuilderFormatter

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample.jsonl"
FAST = {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}


def check_corpus(text: str, documents: int) -> list[str]:
    """The corpus rules; returns the documents."""
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert not text.startswith(("\n", " "))
    assert "\n\n\n" not in text
    docs = text[:-1].split("\n\n")
    assert len(docs) == documents
    for doc in docs:
        assert doc and doc == doc.strip()
        assert not re.search(r"\n[^\S\n]*\n", doc)
        assert not doc.startswith("=== Document")
    return docs


def test_format_documents_rules() -> None:
    docs = [
        {"text": "First line.\n\n\nAfter three newlines.\n \t \nAfter a spaced blank line."},
        {"text": "  \n\nLeading and trailing blank lines.\n\n  ", "title": "T", "source": "s"},
        {"text": "Windows\r\n\r\nline endings."},
        {"text": "Grüße, 東京, emoji 👋."},
    ]
    text = LLMBuilderFormatter(FAST).format_documents(docs)
    assert text == (
        "First line.\nAfter three newlines.\nAfter a spaced blank line.\n\n"
        "Leading and trailing blank lines.\n\n"
        "Windows\r\nline endings.\n\n"
        "Grüße, 東京, emoji 👋.\n"
    )
    check_corpus(text, 4)
    assert "Source:" not in text and "Title" not in text


def test_empty_documents_are_dropped_not_written() -> None:
    formatter = LLMBuilderFormatter(FAST)
    text = formatter.format_documents([{"text": "a"}, {"text": " \n\n \t"}, {"text": "b"}])
    assert text == "a\n\nb\n"
    assert formatter.stats.dropped == {"empty_text": 1}


@pytest.mark.parametrize("space", ["\u00a0", "\u3000"])
def test_a_line_of_unicode_whitespace_is_a_blank_line_too(space: str) -> None:
    """The ends of a document are stripped with ``str.strip`` (Unicode whitespace), but the
    inner blank-line rule only knows ASCII whitespace: a line holding only a no-break or
    ideographic space survives, and a reader that treats whitespace-only lines as blank
    (``line.strip() == ""``) sees a document boundary inside the document."""
    text = LLMBuilderFormatter(FAST).format_documents([{"text": f"one\n{space}\ntwo"}])
    assert all(line.strip() for line in text[:-1].split("\n")), repr(text)


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("llmbuilder") / "out"
    config = {
        **FAST,
        "output": {"split": {"train": 0.8, "validation": 0.2}, "shard_records": 100},
    }
    qudata.pack_dataset(SAMPLE, out, formats=["llmbuilder", "jsonl"], config=config)
    return out


def test_one_folder_per_split_and_only_txt_files(packed: Path) -> None:
    root = packed / "llmbuilder"
    assert sorted(p.name for p in root.iterdir()) == ["train", "validation"]
    for split in ("train", "validation"):
        files = sorted((root / split).iterdir())
        assert files and all(p.suffix == ".txt" for p in files)
        assert all(p.name.startswith(f"{split}-") for p in files)


def test_every_file_follows_the_corpus_rules(packed: Path) -> None:
    manifest = orjson.loads((packed / "manifest.json").read_bytes())
    files = manifest["formats"]["llmbuilder"]["files"]
    assert len(files) >= 3
    for file in files:
        assert file["path"].startswith(f"llmbuilder/{file['split']}/")
        text = (packed / file["path"]).read_bytes().decode("utf-8")
        check_corpus(text, file["documents"])


def test_corpus_holds_the_documents_of_its_split(packed: Path) -> None:
    manifest = orjson.loads((packed / "manifest.json").read_bytes())
    blank = re.compile(r"\n[^\S\n]*\n(?:[^\S\n]*\n)*")
    for split in ("train", "validation"):
        expected: list[str] = []
        for file in manifest["formats"]["jsonl"]["files"]:
            if file["split"] == split:
                for line in (packed / file["path"]).read_bytes().splitlines():
                    row: dict[str, Any] = orjson.loads(line)
                    cleaned = blank.sub("\n", row["text"].strip())
                    if cleaned:
                        expected.append(cleaned)
        got = [
            doc
            for file in manifest["formats"]["llmbuilder"]["files"]
            if file["split"] == split
            for doc in (packed / file["path"]).read_text(encoding="utf-8")[:-1].split("\n\n")
        ]
        assert got == expected, split
