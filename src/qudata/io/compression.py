"""Open files by codec (none, gzip, zstd), chosen from the file name."""

from __future__ import annotations

import gzip
import io
import sys
from typing import BinaryIO

__all__ = ["CODEC_EXTENSIONS", "compressing_writer", "open_for_reading"]

CODEC_EXTENSIONS = {"none": "", "gzip": ".gz", "zstd": ".zst"}


def open_for_reading(path: str) -> BinaryIO:
    """A binary stream of the decompressed bytes of ``path`` (``-``: standard input)."""
    if path == "-":
        return sys.stdin.buffer
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if path.endswith(".zst"):
        import zstandard

        raw = open(path, "rb")  # noqa: SIM115 - closed with the reader below
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader)  # type: ignore[arg-type]
    return open(path, "rb")


def compressing_writer(raw: BinaryIO, codec: str = "none") -> BinaryIO:
    """A binary stream that compresses into ``raw`` with ``codec`` and closes it when closed."""
    if codec == "gzip":
        # mtime=0 and no file name keep the bytes reproducible
        return _ClosingGzip(raw)  # type: ignore[return-value]
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=True)  # type: ignore[return-value]
    return raw


class _ClosingGzip(gzip.GzipFile):
    def __init__(self, raw: BinaryIO) -> None:
        super().__init__(filename="", mode="wb", fileobj=raw, mtime=0)
        self._raw = raw

    def close(self) -> None:
        super().close()
        self._raw.close()
