"""LLMBuilder: a UTF-8 plain-text corpus, documents separated by blank lines, no headers.

LLMBuilder's data loader reads every ``.txt`` under the folder it is given, so
each split has its own folder (``llmbuilder/train/``, ``llmbuilder/validation/``):
a flat layout would leak validation text into training. A blank line inside a
document would read as a document boundary, so runs of blank lines inside a
document become one newline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from qudata.config import LLMBuilderOptions
from qudata.models import Document
from qudata.pack.base import Encoder, Formatter, Record
from qudata.quality.report import Drop

__all__ = ["LLMBuilderFormatter"]

_BLANK_LINES = re.compile(r"\n[^\S\n]*\n(?:[^\S\n]*\n)*")  # any Unicode whitespace


class _BlankLineEncoder(Encoder):
    def __init__(self) -> None:
        self._first = True

    def encode(self, record: Record) -> bytes:
        data = str(record).encode("utf-8")
        if self._first:
            self._first = False
            return data
        return b"\n\n" + data

    def finish(self) -> bytes:
        return b"" if self._first else b"\n"


class LLMBuilderFormatter(Formatter[LLMBuilderOptions]):
    """Plain-text corpus for LLMBuilder, one folder per split.

    Example::

        LLMBuilderFormatter().format_documents(docs)   # the corpus text
    """

    name: ClassVar[str] = "llmbuilder"
    extension: ClassVar[str] = ".txt"
    options_model: ClassVar[type[LLMBuilderOptions]] = LLMBuilderOptions

    def format_document(
        self, doc: Document, opts: LLMBuilderOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        text = _BLANK_LINES.sub("\n", doc.text.strip())
        if not text:
            return Drop("empty_text", "the document text is empty")
        return [text]

    def encoder(self, opts: LLMBuilderOptions) -> Encoder:
        return _BlankLineEncoder()

    def writer(self, directory: Path, split: str, **options: Any) -> Any:
        # LLMBuilder reads .txt files: its corpus is never compressed
        return super().writer(directory / split, split, **{**options, "codec": "none"})

    def format_documents(self, documents: Any, config: Any = None, **options: Any) -> Any:
        """The whole corpus text, exactly as written to a file."""
        encoder = self.encoder(self.resolve(config, **options))
        parts = [encoder.encode(r) for r in self.iter_records(documents, config=config, **options)]
        return b"".join([*parts, encoder.finish()]).decode("utf-8")
