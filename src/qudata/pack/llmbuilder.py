"""LLMBuilder: one file per split, SentencePiece token ids (``.npy``) or text (``.txt``).

What LLMBuilder 2.x does with its input decides the layout. Its ``TextDataset`` takes
1-D token files (``.npy``/``.pt``) and cuts them into windows: with
``pack.llmbuilder.tokenizer`` (a SentencePiece ``.model``, e.g. from ``llmbuilder data
tokenizer``) each split is ``llmbuilder/<split>.npy``, int32, every document's
``encode(text)`` followed by the model's EOS id, in the order of the JSONL output. The
EOS id is the document boundary a model learns; a text corpus has none once
SentencePiece's normalisation has turned its newlines into spaces.

Without a tokenizer, ``llmbuilder/<split>.txt``: every document, then a line holding
``pack.llmbuilder.separator`` (``<|endoftext|>``). The separator is visible text, so it
survives LLMBuilder's ``DataLoader`` cleaning (blank lines deleted, the lines around them
glued together, control characters removed) and SentencePiece's newline normalisation.
A document containing the separator is dropped (``contains_separator``): its boundary
could not be read back. Paragraph breaks stay one blank line each (``paragraphs: keep``)
or become one newline (``newline``: what LLMBuilder's default cleaning keeps). One file
per split: LLMBuilder is given one path, and a folder would be read whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from qudata.account import Drop
from qudata.config import Config
from qudata.errors import ConfigError, MissingExtraError
from qudata.io.npy import NPY_DTYPE, NpyWriter
from qudata.io.split_file import SplitFileWriter
from qudata.models import Document
from qudata.pack.base import Encoder, Formatter, Record
from qudata.sections import Section

__all__ = ["LLMBuilderFormatter", "LLMBuilderOptions", "load_sentencepiece"]


class LLMBuilderOptions(Section):
    """``pack.llmbuilder``: one file per split for LLMBuilder, token ids or text.

    With ``tokenizer`` (a SentencePiece ``.model``), ``<split>.npy``: int32 ids, each
    document's ``encode(text)`` then the model's EOS id. Without, ``<split>.txt``: each
    document, then a line holding ``separator``; ``paragraphs: keep`` keeps a blank line
    between paragraphs, ``newline`` makes it one newline (LLMBuilder's default cleaning
    deletes blank lines and glues the lines around them together).
    """

    tokenizer: str | None = Field(
        default=None,
        description="a SentencePiece `.model`: write `<split>.npy` token ids (extra "
        "`llmbuilder`); none: text",
    )
    separator: str = Field(
        default="<|endoftext|>",
        description="text mode: the line written after every document (one line of visible text)",
    )
    paragraphs: Literal["keep", "newline"] = Field(
        default="keep",
        description="text mode: a paragraph break stays a blank line (`keep`) or becomes one "
        "newline (`newline`)",
    )

    @field_validator("separator")
    @classmethod
    def _one_visible_line(cls, value: str) -> str:
        if not value or value != value.strip() or not value.isprintable():
            raise ValueError(
                "separator: one line of visible text, no surrounding spaces (LLMBuilder's "
                "cleaner strips spaces and deletes control characters): e.g. <|endoftext|>"
            )
        return value


#: a run of blank lines (Unicode whitespace only) and the line end before it
_BLANK_LINES = re.compile(r"[^\S\n]*\n\s*\n")
_PARAGRAPH_BREAK = {"keep": "\n\n", "newline": "\n"}


def load_sentencepiece(path: str) -> Any:
    """The SentencePiece processor of ``path``, with an EOS id (the document boundary)."""
    try:
        import sentencepiece
    except ImportError as exc:
        raise MissingExtraError(
            "llmbuilder", "sentencepiece", feature="pack.llmbuilder.tokenizer"
        ) from exc
    try:
        processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"pack.llmbuilder.tokenizer: cannot load {path!r}: {exc}") from exc
    if processor.eos_id() < 0:
        raise ConfigError(
            f"pack.llmbuilder.tokenizer: {path!r} has no EOS piece (train it with eos_id set, "
            "as `llmbuilder data tokenizer` does)"
        )
    return processor


class _SeparatorEncoder(Encoder):
    """A document's text, a newline, the separator line."""

    def __init__(self, separator: str) -> None:
        self._tail = f"\n{separator}\n"

    def encode(self, record: Record) -> bytes:
        return (str(record) + self._tail).encode("utf-8")


class _IdsEncoder(Encoder):
    """A record's token ids as :class:`~qudata.io.npy.NpyWriter` stores them."""

    def encode(self, record: Record) -> bytes:
        import numpy as np

        return np.asarray(record, dtype=NPY_DTYPE).tobytes()


class LLMBuilderFormatter(Formatter[LLMBuilderOptions]):
    """LLMBuilder training files, one per split: token ids with a tokenizer, else text.

    Example::

        LLMBuilderFormatter().format_documents(docs)   # the text of one split's file
        pack_dataset(["docs.jsonl"], "out", formats=["llmbuilder"],
                     config={"pack": {"llmbuilder": {"tokenizer": "tokenizer.model"}}})
        # out/llmbuilder/train.npy: TextDataset("out/llmbuilder/train.npy", block_size=...)
    """

    name: ClassVar[str] = "llmbuilder"
    extension: ClassVar[str] = ".txt"
    options_model: ClassVar[type[LLMBuilderOptions]] = LLMBuilderOptions
    writes_encoded: ClassVar[bool] = True  # parts hold the file's bytes (text or ids)

    def __init__(
        self,
        config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(config, **options)
        #: the SentencePiece processor (checked here: a missing extra fails before any work)
        self.processor: Any = (
            load_sentencepiece(self.options.tokenizer) if self.options.tokenizer else None
        )
        if self.options.tokenizer:  # the manifest's tokens are this model's ids
            self.stats.tokenizer, self.stats.tokens_exact = self.options.tokenizer, True

    def _encode(self, texts: list[str]) -> list[list[int]]:
        threads = self.config.quality.token_threads or 1
        ids: list[list[int]] = self.processor.encode(texts, out_type=int, num_threads=threads)
        return ids

    def prepare_batch(
        self, docs: Sequence[Document], opts: LLMBuilderOptions, state: dict[str, Any]
    ) -> None:
        """With a tokenizer: the whole batch encoded in one call (SentencePiece's threads)."""
        if self.processor is not None:
            state["ids"] = dict(
                zip(map(id, docs), self._encode([d.text for d in docs]), strict=True)
            )

    def format_document(
        self, doc: Document, opts: LLMBuilderOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        if not doc.text.strip():
            return Drop("empty_text", "the document text is empty")
        if self.processor is not None:
            ids = state.get("ids", {}).pop(id(doc), None)
            if ids is None:
                ids = self._encode([doc.text])[0]
            if not ids:
                return Drop("empty_text", "the document text has no tokens")
            return [[*ids, self.processor.eos_id()]]
        if opts.separator in doc.text:
            return Drop("contains_separator", f"the text holds the separator {opts.separator!r}")
        return [_BLANK_LINES.sub(_PARAGRAPH_BREAK[opts.paragraphs], doc.text.strip())]

    def token_texts(self, record: Record, doc: Document) -> list[str]:
        # token ids are counted as they are (record_tokens), not by quality.tokenizer
        return [] if self.processor is not None else [doc.text]

    def record_tokens(self, record: Record) -> int | None:
        """A token record's tokens are its ids, the EOS id included."""
        return len(record) if isinstance(record, list) else None

    def encoder(self, opts: LLMBuilderOptions) -> Encoder:
        """The bytes of a record in its split's file: text and the separator line, or
        (with a tokenizer) the ids as the ``.npy`` holds them."""
        if self.processor is not None:
            return _IdsEncoder()
        return _SeparatorEncoder(opts.separator)

    def writer(self, directory: Path, split: str, **options: Any) -> Any:
        # one file per split (LLMBuilder takes a path), never compressed nor sharded
        relative_to = options["relative_to"]
        if self.processor is not None:
            return NpyWriter(directory, split, relative_to=relative_to)
        return SplitFileWriter(
            directory,
            split,
            self.extension,
            relative_to=relative_to,
            new_encoder=lambda: self.encoder(self.options),
        )

    def format_documents(self, documents: Any, config: Any = None, **options: Any) -> Any:
        """The text of one split's file (token ids: one list of ids per document)."""
        if self.processor is not None:
            return list(self.iter_records(documents, config=config, **options))
        encoder = self.encoder(self.resolve(config, **options))
        parts = [encoder.encode(r) for r in self.iter_records(documents, config=config, **options)]
        return b"".join([*parts, encoder.finish()]).decode("utf-8")
