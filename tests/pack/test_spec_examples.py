"""The specification's usage examples, verbatim, and golden outputs compared byte for byte.

The golden files in tests/data/golden/ were produced by the formatters from
tests/data/docs.jsonl and checked by hand against docs/pack-spec.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from qudata.models import Document
from qudata.pack import ChatMLFormatter, JSONLFormatter, PlainTextFormatter

SYSTEM = "You are a helpful assistant."


def load_rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_chatml_usage_example(spec_docs: list[dict[str, Any]]) -> None:
    documents = spec_docs
    formatter = ChatMLFormatter()
    chatml_data = formatter.format_documents(
        documents,
        config={"system_message": "You are a helpful assistant.", "include_metadata": True},
    )
    assert isinstance(chatml_data, list) and len(chatml_data) == 2
    first = chatml_data[0]
    assert list(first) == ["messages", "metadata"]
    assert [list(m) for m in first["messages"]] == [["role", "content"]] * 3
    assert first["messages"][0] == {"role": "system", "content": SYSTEM}
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    assert first["messages"][2]["content"] == "Content goes here..."
    assert list(first["metadata"])[:3] == ["source", "quality_score", "topics"]
    assert first["metadata"]["source"] == "document.pdf"
    assert first["metadata"]["quality_score"] == 0.85
    assert first["metadata"]["topics"] == ["technology", "AI"]
    assert chatml_data[1]["metadata"]["topics"] == ["science"]


def test_jsonl_usage_example(
    spec_docs: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    processed_docs = [dict(d, labels=[f"category{i}"]) for i, d in enumerate(spec_docs, 1)]
    formatter = JSONLFormatter()
    formatter.export_to_file(
        documents=processed_docs,
        output_path="training_data.jsonl",
        fields=["text", "labels", "metadata"],
    )
    lines = load_rows(tmp_path / "training_data.jsonl")
    assert [list(line) for line in lines] == [["text", "labels", "metadata"]] * 2
    assert lines[0]["text"] == "Content goes here..."
    assert lines[0]["labels"] == ["category1"]
    assert lines[1]["labels"] == ["category2"]
    assert lines[0]["metadata"]["source"] == "document.pdf"
    assert lines[1]["metadata"]["source"] == "file2.pdf"


def test_plain_usage_example(spec_docs: list[dict[str, Any]], spec_plain: str) -> None:
    documents = spec_docs
    formatter = PlainTextFormatter()
    text_output = formatter.format_documents(documents, separator="\n---\n", include_headers=True)
    assert isinstance(text_output, str)
    assert text_output == spec_plain


def test_spec_yaml_drives_all_three_formatters(
    spec_yaml: Path, spec_docs: list[dict[str, Any]]
) -> None:
    (record, _) = ChatMLFormatter(spec_yaml).format_documents(spec_docs)
    assert record["messages"][0] == {"role": "system", "content": SYSTEM}
    assert "metadata" in record
    jsonl = JSONLFormatter(spec_yaml)
    lines = jsonl.format_documents(spec_docs)  # 0.72 >= 0.7: both kept
    assert [list(x) for x in lines] == [["text", "labels", "metadata", "quality_score"]] * 2
    assert [x["quality_score"] for x in lines] == [0.85, 0.72]
    low = jsonl.format_documents([dict(spec_docs[0], quality_score=0.69)])
    assert low == [] and jsonl.stats.dropped == {"low_quality": 1}
    assert PlainTextFormatter(spec_yaml).options.max_line_length == 120


# --- golden files: byte-for-byte ---

GOLDEN_CALLS = {
    "chatml.jsonl": lambda rows, out: ChatMLFormatter().export_to_file(
        rows, out, config={"system_message": SYSTEM, "include_metadata": True}
    ),
    "jsonl.jsonl": lambda rows, out: JSONLFormatter().export_to_file(
        documents=rows, output_path=out, fields=["text", "labels", "metadata"]
    ),
    "plain.txt": lambda rows, out: PlainTextFormatter().export_to_file(
        rows, out, separator="\n---\n", include_headers=True
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CALLS))
def test_golden_output(name: str, docs_file: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / name
    GOLDEN_CALLS[name](load_rows(docs_file), out)
    assert out.read_bytes() == (data_dir / "golden" / name).read_bytes()


def test_golden_plain_begins_with_the_spec_example(data_dir: Path, spec_plain: str) -> None:
    golden = (data_dir / "golden" / "plain.txt").read_text(encoding="utf-8")
    assert golden.startswith(spec_plain.removesuffix("\n") + "\n\n---\n\n=== Document 3 ===\n")


# --- the three input shapes give the same output ---


@dataclass
class _Meta:
    quality_score: float
    topics: list[str]


@dataclass
class _PipelineDoc:
    content: str
    source_path: str
    metadata: _Meta


def _shapes(spec_docs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {
        "dict": spec_docs,
        "document": [
            Document(
                text=d["text"],
                metadata={"source": d["source"], "topics": d["topics"]},
                quality_score=d["quality_score"],
            )
            for d in spec_docs
        ],
        "pipeline": [
            _PipelineDoc(d["text"], d["source"], _Meta(d["quality_score"], d["topics"]))
            for d in spec_docs
        ],
    }


@pytest.mark.parametrize("shape", ["document", "pipeline"])
def test_input_shapes_give_identical_output(
    shape: str, spec_docs: list[dict[str, Any]], spec_plain: str
) -> None:
    shapes = _shapes(spec_docs)
    assert PlainTextFormatter().format_documents(shapes[shape]) == spec_plain
    jsonl = JSONLFormatter(fields=["id", "text", "metadata"])
    assert jsonl.format_documents(shapes[shape]) == jsonl.format_documents(shapes["dict"])
    chatml = ChatMLFormatter(include_metadata=True)
    assert chatml.format_documents(shapes[shape]) == chatml.format_documents(shapes["dict"])
