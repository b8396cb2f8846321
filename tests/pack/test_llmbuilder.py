"""LLMBuilder text mode: one ``<split>.txt`` per split, every document then a separator line,
paragraph breaks kept; read back through LLMBuilder's own DataLoader when it is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

import qudata
from qudata.pack.llmbuilder import LLMBuilderFormatter, LLMBuilderOptions

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample.jsonl"
FAST = {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}
SEP = "\n<|endoftext|>\n"


def split_corpus(text: str, separator: str = "<|endoftext|>") -> list[str]:
    """The documents of a corpus: each one is followed by its separator line."""
    tail = f"\n{separator}\n"
    assert text.endswith(tail)
    return text[: -len(tail)].split(tail)


def test_paragraph_breaks_are_kept_as_one_blank_line() -> None:
    docs = [
        {"text": "First line.\n\n\nAfter three newlines.\n \t \nAfter a spaced blank line."},
        {"text": "  \n\nLeading and trailing blank lines.\n\n  ", "title": "T", "source": "s"},
        {"text": "Windows\r\n\r\nline endings.\r\nNext line."},
        {"text": "Grüße, 東京, emoji 👋.\n    indented code"},
    ]
    text = LLMBuilderFormatter(FAST).format_documents(docs)
    assert text == (
        "First line.\n\nAfter three newlines.\n\nAfter a spaced blank line." + SEP
        + "Leading and trailing blank lines." + SEP
        + "Windows\n\nline endings.\r\nNext line." + SEP
        + "Grüße, 東京, emoji 👋.\n    indented code" + SEP
    )  # fmt: skip
    assert "Source:" not in text and "Title" not in text


def test_paragraphs_newline_makes_each_break_one_newline() -> None:
    docs = [{"text": "One.\n\n\nTwo.\n \nThree.\nFour."}]
    text = LLMBuilderFormatter(FAST, paragraphs="newline").format_documents(docs)
    assert text == "One.\nTwo.\nThree.\nFour." + SEP


@pytest.mark.parametrize("space", ["\u00a0", "\u3000"])
def test_a_line_of_unicode_whitespace_is_a_blank_line(space: str) -> None:
    """A line holding only a no-break or ideographic space is a paragraph break like any
    blank line: it never reaches the file as an invisible, non-empty line."""
    formatter = LLMBuilderFormatter(FAST)
    assert formatter.format_documents([{"text": f"one\n{space}\ntwo"}]) == "one\n\ntwo" + SEP
    newline = LLMBuilderFormatter(FAST, paragraphs="newline")
    assert newline.format_documents([{"text": f"one\n{space}\ntwo"}]) == "one\ntwo" + SEP


def test_empty_documents_and_documents_holding_the_separator_are_dropped() -> None:
    formatter = LLMBuilderFormatter(FAST, separator="=== END ===")
    docs = [{"text": "a"}, {"text": " \n\n \t"}, {"text": "x === END === y"}, {"text": "b"}]
    text = formatter.format_documents(docs)
    assert text == "a\n=== END ===\nb\n=== END ===\n"
    assert split_corpus(text, "=== END ===") == ["a", "b"]
    assert formatter.stats.dropped == {"empty_text": 1, "contains_separator": 1}


@pytest.mark.parametrize("bad", ["", " <eos>", "a\nb", "tab\there", "nul\x00"])
def test_separator_must_be_one_visible_line(bad: str) -> None:
    with pytest.raises(ValidationError, match="separator"):
        LLMBuilderOptions(separator=bad)


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("llmbuilder") / "out"
    config = {
        **FAST,
        "output": {"split": {"train": 0.8, "validation": 0.2}, "shard_records": 100},
    }
    qudata.pack_dataset(SAMPLE, out, formats=["llmbuilder", "jsonl"], config=config)
    return out


def test_one_txt_file_per_split_whatever_the_shard_settings(packed: Path) -> None:
    manifest = orjson.loads((packed / "manifest.json").read_bytes())
    assert sorted(p.name for p in (packed / "llmbuilder").iterdir()) == [
        "train.txt",
        "validation.txt",
    ]
    files = manifest["formats"]["llmbuilder"]["files"]
    assert [(f["path"], f["split"]) for f in files] == [
        ("llmbuilder/train.txt", "train"),
        ("llmbuilder/validation.txt", "validation"),
    ]
    for file in files:
        data = (packed / file["path"]).read_bytes()
        assert file["bytes"] == len(data) and file["documents"] == len(
            split_corpus(data.decode("utf-8"))
        )


def test_corpus_holds_the_documents_of_its_split_in_jsonl_order(packed: Path) -> None:
    manifest = orjson.loads((packed / "manifest.json").read_bytes())
    formatter = LLMBuilderFormatter(FAST)
    for split in ("train", "validation"):
        rows: list[dict[str, Any]] = [
            orjson.loads(line)
            for file in manifest["formats"]["jsonl"]["files"]
            if file["split"] == split
            for line in (packed / file["path"]).read_bytes().splitlines()
        ]
        expected = [r["text"] for r in rows if r["text"].strip()]
        text = (packed / "llmbuilder" / f"{split}.txt").read_text(encoding="utf-8")
        formatted = [formatter.format_documents([{"text": t}]) for t in expected]
        assert split_corpus(text) == [f[: -len(SEP)] for f in formatted]
        assert any("\n\n" in doc for doc in split_corpus(text))  # paragraphs survive


def test_llmbuilder_data_loader_keeps_every_document_boundary(packed: Path) -> None:
    """LLMBuilder's own DataLoader, with its default cleaning, reads the file; each
    separator is still there, on a line of its own, between the documents' words."""
    loader_module = pytest.importorskip("llmbuilder.data.loader")
    path = packed / "llmbuilder" / "train.txt"
    documents = split_corpus(path.read_text(encoding="utf-8"))
    cleaned = loader_module.DataLoader(min_length=1).load_file(path)
    assert cleaned is not None
    pieces = cleaned.split("\n<|endoftext|>")
    assert len(pieces) == len(documents) + 1 and pieces[-1] == ""
    assert pieces[0].strip() and all(p.startswith("\n") and p.strip() for p in pieces[1:-1])
    raw = loader_module.DataLoader(min_length=1, clean_text=False).load_file(path)
    assert raw == path.read_text(encoding="utf-8")
