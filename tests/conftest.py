"""Shared fixtures: the specification's two documents, small input files, helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

DATA = Path(__file__).parent / "data"

#: The two documents of the specification's plain-text example.
SPEC_DOCS: list[dict[str, Any]] = [
    {
        "text": "Content goes here...",
        "source": "document.pdf",
        "quality_score": 0.85,
        "topics": ["technology", "AI"],
    },
    {
        "text": "Another document.",
        "source": "file2.pdf",
        "quality_score": 0.72,
        "topics": ["science"],
    },
]

#: The exact plain text the specification's example must produce for SPEC_DOCS.
SPEC_PLAIN = (
    "=== Document 1 ===\nSource: document.pdf\nQuality: 0.85\nTopics: technology, AI\n\n"
    "Content goes here...\n\n---\n\n"
    "=== Document 2 ===\nSource: file2.pdf\nQuality: 0.72\nTopics: science\n\n"
    "Another document.\n"
)

#: The configuration section of the specification, verbatim.
SPEC_YAML = """\
pack:
  chatml:
    system_message: "You are a helpful assistant."
    include_metadata: true
    max_tokens_per_message: 4096
  jsonl:
    fields: ["text", "labels", "metadata", "quality_score"]
    filter_low_quality: true
    min_quality_score: 0.7
  plain:
    separator: "\\n---\\n"
    include_headers: true
    max_line_length: 120
"""


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def spec_docs() -> list[dict[str, Any]]:
    """A fresh copy of the specification's two documents (tests may mutate it)."""
    return [dict(d, topics=list(d["topics"])) for d in SPEC_DOCS]


@pytest.fixture
def spec_plain() -> str:
    return SPEC_PLAIN


@pytest.fixture
def spec_yaml(tmp_path: Path) -> Path:
    """The specification's YAML as a file."""
    path = tmp_path / "pack.yaml"
    path.write_text(SPEC_YAML, encoding="utf-8")
    return path


@pytest.fixture
def docs_file() -> Path:
    """Five documents: the spec's two, non-ASCII text, a missing id, an integer id."""
    return DATA / "docs.jsonl"


@pytest.fixture
def bad_file() -> Path:
    """Seven lines: two good, then bad JSON, an array, no text, a number text, bad UTF-8."""
    return DATA / "bad.jsonl"


@pytest.fixture
def write_jsonl() -> Callable[[Path, Iterable[Any]], Path]:
    """Write rows (dicts, or raw ``bytes`` lines) as JSON Lines; returns the path."""

    def write(path: Path, rows: Iterable[Any]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for row in rows:
                out.write(row if isinstance(row, bytes) else orjson.dumps(row))
                out.write(b"\n")
        return path

    return write


@pytest.fixture
def read_jsonl() -> Callable[[Path], list[Any]]:
    """Parse a JSON Lines file (strictly: every line must be JSON)."""

    def read(path: Path) -> list[Any]:
        return [orjson.loads(line) for line in Path(path).read_bytes().splitlines()]

    return read


@pytest.fixture
def fast_config() -> dict[str, Any]:
    """A pipeline configuration that needs no tokenizer (keeps tests fast and offline).

    The ChatML limit is switched off explicitly: a limit cannot be enforced without one.
    """
    return {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}
