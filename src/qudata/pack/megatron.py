"""Megatron-LM indexed datasets: ``megatron/<split>-NNNNN-of-NNNNN.bin`` + ``.idx``.

One sequence per document, in the order of the JSONL output: its text tokenized with
``quality.tokenizer``, then the end-of-document token (``<|endoftext|>`` for the
tiktoken encodings, the tokenizer's own EOS for a ``tokenizer.json``: see
:mod:`qudata.pack.eod`). Token ids are ``uint16`` when the vocabulary has fewer than 65,500 entries,
else ``int32`` (Megatron's own rule). The ``.idx`` is the ``MMIDIDX`` version-1 layout that
``megatron.core.datasets.indexed_dataset.IndexedDataset`` reads:

- ``b"MMIDIDX\\x00\\x00"``, version ``<Q`` 1, dtype code ``<B``, sequence count ``<Q``,
  document count ``<Q`` (sequences + 1);
- sequence lengths ``int32[n]``, sequence byte offsets in the ``.bin`` ``int64[n]``,
  document boundaries ``int64[n + 1]`` (``0, 1, ..., n``: a document is one sequence).

A conversation is written as its ``text``, or in ChatML markup with ``pack.megatron.text:
render`` (its messages cleaned of chat markup by ``pack.chatml.markup``, as ``-f chatml``
and ``-f packed`` clean them; the ChatML markers are special ids where the tokenizer has
them, special-token text in content is ordinary text). Written with numpy; shards follow
``output.shard_size`` (bytes of ``.bin``) and ``output.shard_records``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from qudata.account import Drop, FileStats
from qudata.errors import ConfigError
from qudata.io.writers import AtomicFile
from qudata.models import Document
from qudata.pack.base import Encoder, Formatter, Record
from qudata.pack.chatml import chatml_options
from qudata.pack.chatml_render import render_chatml
from qudata.pack.eod import EOD_CANDIDATES, end_of_document
from qudata.pack.markup import CHATML_MARKERS, MarkupGuard, MessageCleaner
from qudata.pack.masks import Vocabulary
from qudata.sections import Section

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "EOD_CANDIDATES",
    "INDEX_HEADER",
    "MegatronFormatter",
    "MegatronOptions",
    "MegatronWriter",
    "TokenEncoder",
    "token_dtype",
]


class MegatronOptions(Section):
    """``pack.megatron``: a Megatron-LM indexed dataset (token ids, one sequence a document)."""

    text: Literal["text", "render"] = Field(
        default="text",
        description="a conversation's sequence: `text`, or `render` (ChatML markup)",
    )
    eod_token: str | None = Field(
        default=None,
        description="end-of-document token appended to each sequence (none: the tokenizer's "
        "own EOS)",
    )


INDEX_HEADER = b"MMIDIDX\x00\x00"
_DTYPE_CODES = {"uint16": 8, "int32": 4}  # Megatron's DType enum


def token_dtype(vocab_size: int) -> np.dtype[Any]:
    """Megatron's rule: ``uint16`` below 65,500 token ids, else ``int32``."""
    import numpy as np

    return np.dtype(np.uint16 if vocab_size < 65500 else np.int32)


class MegatronFormatter(Formatter[MegatronOptions]):
    """Token ids for Megatron-LM pretraining (one sequence per document, EOD-terminated).

    Example::

        pack_dataset(["docs.jsonl"], "out", formats=["megatron"])
        # out/megatron/train-00000-of-00001.bin + .idx, read by megatron-core's IndexedDataset
    """

    name: ClassVar[str] = "megatron"
    extension: ClassVar[str] = ".bin"
    options_model: ClassVar[type[MegatronOptions]] = MegatronOptions
    writes_encoded: ClassVar[bool] = True  # parts hold the .bin bytes, not JSON lists

    def _tokenizer(self, state: dict[str, Any]) -> tuple[Any, int, np.dtype[Any]]:
        """The run's exact counter, its end-of-document id and the token dtype."""
        if "eod" not in state:
            counter = self.counter
            base = getattr(counter, "counter", counter)
            if counter is None or not counter.exact or not hasattr(base, "token_id"):
                raise ConfigError(
                    "-f megatron writes token ids: set quality.tokenizer to cl100k_base, "
                    "o200k_base or a tokenizer.json (not estimate or none)"
                )
            eod = end_of_document(base, self.options.eod_token, option="pack.megatron.eod_token")
            state.update(eod=eod, dtype=token_dtype(base.vocab_size), counter=counter)
        return state["counter"], state["eod"], state["dtype"]

    def _render(self, doc: Document, state: dict[str, Any]) -> list[int] | Drop:
        """``text: render``: the ChatML text of a conversation, its markup cleaned by
        ``pack.chatml.markup`` as ``-f chatml`` and ``-f packed`` clean it, tokenized whole
        with only the ChatML markers special (where the tokenizer has them)."""
        if "cleaner" not in state:
            guard = MarkupGuard(CHATML_MARKERS, policy=chatml_options(self.config).markup)
            state["cleaner"] = MessageCleaner(guard)
            state["encode"] = Vocabulary(self.counter).encoder(guard.markers)
        assert doc.messages is not None
        cleaned = state["cleaner"].clean_counted(
            [*doc.messages, {"tools": doc.tools}], self.stats.events
        )
        if cleaned is None:
            return Drop("markup", "a message holds chat markup (markup: drop)")
        text = render_chatml(cleaned[:-1], cleaned[-1]["tools"] or None)
        return list(state["encode"](text).ids)

    def format_document(
        self, doc: Document, opts: MegatronOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        render = doc.messages is not None and opts.text == "render"
        if not render and not doc.text.strip():
            return Drop("empty_text", "the document text is empty")
        counter, eod, dtype = self._tokenizer(state)
        if render:
            ids = self._render(doc, state)
            return ids if isinstance(ids, Drop) else [[*ids, eod]]
        encode_ids = getattr(counter, "encode_ids", None)
        if encode_ids is None:
            return [[*counter.encode(doc.text), eod]]
        return [_with_eod(encode_ids(doc.text), eod, dtype)]

    def token_texts(self, record: Record, doc: Document) -> list[str]:
        if doc.messages is not None and self.options.text == "render":
            return [render_chatml(doc.messages, doc.tools)]
        return [doc.text]

    def record_tokens(self, record: Record) -> int | None:
        """A sequence's tokens are its ids, the end-of-document token included."""
        return len(record)

    def _dtype(self) -> np.dtype[Any]:
        return token_dtype(getattr(getattr(self.counter, "counter", None), "vocab_size", 0))

    def encoder(self, opts: MegatronOptions) -> Encoder:
        return TokenEncoder(self._dtype())

    def writer(self, directory: Path, split: str, **options: Any) -> Any:
        options.pop("codec", None)  # memory-mapped by Megatron: never compressed
        return MegatronWriter(directory, split, dtype=self._dtype(), **options)


def _with_eod(ids: Any, eod: int, dtype: np.dtype[Any]) -> Any:
    """``ids`` and the end-of-document id: an array of the ``.bin``'s dtype when ``ids``
    is one (no list of Python ints on the way), else a list."""
    if not hasattr(ids, "dtype"):
        return [*ids, eod]
    import numpy as np

    out = np.empty(len(ids) + 1, dtype)
    out[:-1] = ids
    out[-1] = eod
    return out


class TokenEncoder(Encoder):
    """A sequence's ids as the bytes of the ``.bin`` (``dtype``)."""

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.dtype = dtype

    def encode(self, record: Record) -> bytes:
        import numpy as np

        return np.asarray(record, dtype=self.dtype).tobytes()


class MegatronWriter:
    """Writes one split as ``.bin`` + ``.idx`` shard pairs (the writer interface of
    :class:`qudata.io.shards.ShardedWriter`)."""

    def __init__(
        self,
        directory: Path,
        split: str,
        *,
        relative_to: Path,
        dtype: np.dtype[Any],
        max_bytes: int | None = None,
        max_records: int | None = None,
    ) -> None:
        self.directory, self.split, self.relative_to = directory, split, relative_to
        self.dtype = dtype
        self.max_bytes, self.max_records = max_bytes, max_records
        self._done: list[tuple[AtomicFile, AtomicFile, FileStats]] = []
        self._bin: AtomicFile | None = None
        self._stats: FileStats | None = None
        self._lengths: list[int] = []
        self._bytes = 0

    def _open(self) -> None:
        base = self.directory / f".{self.split}-{len(self._done):05d}"
        self._bin = AtomicFile(base.with_name(base.name + ".bin.shard"))
        self._bin.__enter__()
        self._stats = FileStats(path="", split=self.split)
        self._lengths, self._bytes = [], 0

    def _full(self) -> bool:
        assert self._stats is not None and self._bin is not None
        return (self.max_bytes is not None and self._bytes >= self.max_bytes) or (
            self.max_records is not None and self._stats.records >= self.max_records
        )

    def _finish_shard(self) -> None:
        assert self._bin is not None and self._stats is not None
        self._bin.__exit__(None, None, None)
        index = AtomicFile(self._bin.path.with_name(self._bin.path.name[:-10] + ".idx.shard"))
        with index:
            index.write(_index(self._lengths, self.dtype))
        self._done.append((self._bin, index, self._stats))
        self._bin = self._stats = None

    def write_document(self, records: list[Any], *, tokens: int = 0) -> None:
        encoder = TokenEncoder(self.dtype)
        self._write(b"".join(map(encoder.encode, records)), [len(ids) for ids in records], tokens)

    def write_encoded(self, data: bytes, *, tokens: Sequence[int]) -> None:
        """One document's sequences as :class:`TokenEncoder` made them; ``tokens``: each
        sequence's (its ids, the end-of-document token included: its length)."""
        self._write(data, tokens, sum(tokens))

    def _write(self, data: bytes, lengths: Sequence[int], tokens: int) -> None:
        if sum(lengths) * self.dtype.itemsize != len(data):
            raise ValueError(f"{len(data)} bytes are not sequences of {sum(lengths)} ids")
        if self._bin is not None and self._full():
            self._finish_shard()
        if self._bin is None:
            self._open()
        assert self._bin is not None and self._stats is not None
        self._bin.write(data)
        self._bytes += len(data)
        self._lengths.extend(lengths)
        self._stats.documents += 1
        self._stats.records += len(lengths)
        self._stats.tokens += tokens

    def abort(self) -> None:
        if self._bin is not None:
            self._bin.__exit__(RuntimeError, RuntimeError("aborted"), None)
        for data, index, _ in self._done:
            data.path.unlink(missing_ok=True)
            index.path.unlink(missing_ok=True)

    def close(self) -> list[FileStats]:
        """Finish the last shard and give every file its final name."""
        if self._bin is not None:
            self._finish_shard()
        total, files = len(self._done), []
        for number, (data, index, stats) in enumerate(self._done):
            stem = self.directory / f"{self.split}-{number:05d}-of-{total:05d}"
            for file, extension, tokens in ((data, ".bin", stats.tokens), (index, ".idx", 0)):
                final = stem.with_name(stem.name + extension)
                os.replace(file.path, final)
                files.append(
                    FileStats(
                        path=final.relative_to(self.relative_to).as_posix(),
                        split=self.split,
                        documents=stats.documents,
                        records=stats.records,
                        bytes=file.bytes_written,
                        sha256=file.sha256,
                        tokens=tokens,
                    )
                )
        return files


def _index(lengths: list[int], dtype: np.dtype[Any]) -> bytes:
    """The ``.idx`` of one shard whose sequences have ``lengths`` tokens."""
    import numpy as np

    sizes = np.asarray(lengths, dtype=np.int32)
    pointers = np.zeros(len(sizes), dtype=np.int64)
    if len(sizes) > 1:
        np.cumsum(sizes[:-1].astype(np.int64) * dtype.itemsize, out=pointers[1:])
    documents = np.arange(len(sizes) + 1, dtype=np.int64)
    header = INDEX_HEADER + struct.pack("<Q", 1) + struct.pack("<B", _DTYPE_CODES[dtype.name])
    header += struct.pack("<Q", len(sizes)) + struct.pack("<Q", len(documents))
    return header + sizes.tobytes() + pointers.tobytes() + documents.tobytes()
