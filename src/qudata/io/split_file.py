"""One file per split, ``<directory>/<split><extension>``: for readers that take one path.

LLMBuilder's data loader and tokenizer trainer are given a file (a folder is read whole,
every split in it), so its text corpus is not sharded. The file is written atomically
and never compressed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qudata.account import FileStats
from qudata.io.writers import AtomicFile

__all__ = ["SplitFileWriter"]


class SplitFileWriter:
    """Writes one split of one format as a single file (the writer interface of
    :class:`qudata.io.shards.ShardedWriter`).

    Example::

        writer = SplitFileWriter(Path("out/llmbuilder"), "train", ".txt",
                                 relative_to=Path("out"), new_encoder=encoder_factory)
        writer.write_document(["Some text."], tokens=3)
        writer.close()   # [FileStats(path="llmbuilder/train.txt", ...)]
    """

    def __init__(
        self,
        directory: Path,
        split: str,
        extension: str,
        *,
        relative_to: Path,
        new_encoder: Callable[[], Any],
    ) -> None:
        self.path = directory / f"{split}{extension}"
        self.relative_to = relative_to
        self._encoder = new_encoder()
        self._file: AtomicFile | None = None
        self._stats = FileStats(path="", split=split)

    def write_document(self, records: Sequence[Any], *, tokens: int = 0) -> None:
        """Write one document's records; all are encoded before any is written, so a
        record the encoder refuses (a lone surrogate) leaves the file as it was."""
        data = [self._encoder.encode(r) for r in records]
        if self._file is None:
            self._file = AtomicFile(self.path)
            self._file.__enter__()
        for chunk in data:
            self._file.write(chunk)
        self._stats.documents += 1
        self._stats.records += len(records)
        self._stats.tokens += tokens

    def write_encoded(self, data: bytes, *, tokens: Sequence[int]) -> None:
        """Write one document's records as the encoder made them (map 2's part);
        ``tokens``: each record's."""
        if self._file is None:
            self._file = AtomicFile(self.path)
            self._file.__enter__()
        self._file.write(data)
        self._stats.documents += 1
        self._stats.records += len(tokens)
        self._stats.tokens += sum(tokens)

    def abort(self) -> None:
        """Remove the partial file (the run failed)."""
        if self._file is not None:
            self._file.__exit__(RuntimeError, RuntimeError("aborted"), None)
            self._file = None

    def close(self) -> list[FileStats]:
        """Finish the file under its final name (no file for a split without documents)."""
        if self._file is None:
            return []
        self._file.write(self._encoder.finish())
        self._file.__exit__(None, None, None)
        stats = self._stats
        stats.path = self.path.relative_to(self.relative_to).as_posix()
        stats.bytes, stats.sha256 = self._file.bytes_written, self._file.sha256
        self._file = None
        return [stats]
