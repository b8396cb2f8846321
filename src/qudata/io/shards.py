"""Sharded output: ``<split>-<NNNNN>-of-<NNNNN><ext>``, rotated by size or record count.

The total is known only at the end, so shards are written under temporary
names and renamed when the split is complete; a split is never buffered in
memory. A document's records always stay in one shard.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qudata.account import FileStats
from qudata.io.compression import CODEC_EXTENSIONS
from qudata.io.writers import AtomicFile

__all__ = ["ShardedWriter"]


class ShardedWriter:
    """Writes one split of one format as shards in ``directory``.

    ``max_bytes`` counts uncompressed bytes; ``encode`` makes a fresh encoder per
    shard (plain text closes each file with its own final newline).

    Example::

        writer = ShardedWriter(Path("out/jsonl"), "train", ".jsonl", relative_to=Path("out"),
                               new_encoder=Encoder, max_records=1000)
        writer.write_document([{"text": "hi"}], tokens=1)
        files = writer.close()      # [FileStats(path="jsonl/train-00000-of-00001.jsonl", ...)]
    """

    def __init__(
        self,
        directory: Path,
        split: str,
        extension: str,
        *,
        relative_to: Path,
        new_encoder: Callable[[], Any],
        codec: str = "none",
        max_bytes: int | None = None,
        max_records: int | None = None,
    ) -> None:
        self.directory = directory
        self.split = split
        self.extension = extension + CODEC_EXTENSIONS[codec]
        self.relative_to = relative_to
        self.new_encoder = new_encoder
        self.codec = codec
        self.max_bytes = max_bytes
        self.max_records = max_records
        self._done: list[tuple[AtomicFile, FileStats]] = []
        self._file: AtomicFile | None = None
        self._stats: FileStats | None = None
        self._encoder: Any = None
        self._raw_bytes = 0

    def _open(self) -> None:
        index = len(self._done)
        path = self.directory / f".{self.split}-{index:05d}{self.extension}.shard"
        self._file = AtomicFile(path, codec=self.codec)
        self._file.__enter__()
        self._stats = FileStats(path="", split=self.split)
        self._encoder = self.new_encoder()
        self._raw_bytes = 0

    def _full(self) -> bool:
        assert self._stats is not None
        return (self.max_bytes is not None and self._raw_bytes >= self.max_bytes) or (
            self.max_records is not None and self._stats.records >= self.max_records
        )

    def _finish_shard(self) -> None:
        assert self._file is not None and self._stats is not None
        tail = self._encoder.finish()
        self._file.write(tail)
        self._file.__exit__(None, None, None)
        self._done.append((self._file, self._stats))
        self._file = self._stats = None

    def write_document(self, records: Sequence[Any], *, tokens: int = 0) -> None:
        """Write one document's records (never split across shards).

        Every record is encoded before any is written, so a record the encoder refuses
        (a lone surrogate) raises before the document touches the file.
        """
        if self._file is not None and self._full():
            self._finish_shard()
        if self._file is None:
            self._open()
        assert self._file is not None and self._stats is not None
        data = [self._encoder.encode(r) for r in records]
        for chunk in data:
            self._file.write(chunk)
            self._raw_bytes += len(chunk)
        self._stats.documents += 1
        self._stats.records += len(records)
        self._stats.tokens += tokens

    def write_encoded(self, data: bytes, *, tokens: Sequence[int]) -> None:
        """Write one document's records already encoded (by a stateless encoder: JSON
        Lines), as :meth:`write_document` would have; ``tokens``: each record's."""
        if self._file is not None and self._full():
            self._finish_shard()
        if self._file is None:
            self._open()
        assert self._file is not None and self._stats is not None
        self._file.write(data)
        self._raw_bytes += len(data)
        self._stats.documents += 1
        self._stats.records += len(tokens)
        self._stats.tokens += sum(tokens)

    def abort(self) -> None:
        """Remove every shard written so far (the run failed)."""
        if self._file is not None:
            self._file.__exit__(RuntimeError, RuntimeError("aborted"), None)
        for file, _ in self._done:
            file.path.unlink(missing_ok=True)

    def close(self) -> list[FileStats]:
        """Finish the last shard and give every shard its final name."""
        if self._file is not None and self._stats is not None and self._stats.records == 0:
            self._file.__exit__(RuntimeError, RuntimeError("empty shard"), None)  # discard
            self._file = self._stats = None
        if self._file is not None:
            self._finish_shard()
        total = len(self._done)
        files = []
        for index, (file, stats) in enumerate(self._done):
            final = self.directory / f"{self.split}-{index:05d}-of-{total:05d}{self.extension}"
            os.replace(file.path, final)
            stats.path = final.relative_to(self.relative_to).as_posix()
            stats.bytes = file.bytes_written
            stats.sha256 = file.sha256
            files.append(stats)
        return files
