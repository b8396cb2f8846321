"""Codecs by file name (none, gzip, zstd): compressed writing, and plain decoded reading."""

from __future__ import annotations

import gzip
from typing import Any, BinaryIO

__all__ = ["CODEC_EXTENSIONS", "compressing_writer", "open_for_reading"]

CODEC_EXTENSIONS = {"none": "", "gzip": ".gz", "zstd": ".zst"}


def open_for_reading(path: str, *, digest: Any = None) -> BinaryIO:
    """A binary stream of the decompressed bytes of ``path`` (``-``: standard input);
    :func:`qudata.io.input_stream.open_input` is the same with errors that name the file."""
    from qudata.io.input_stream import open_input

    return open_input(path, digest=digest).stream  # type: ignore[no-any-return]


def compressing_writer(raw: BinaryIO, codec: str = "none") -> BinaryIO:
    """A binary stream that compresses into ``raw`` with ``codec`` and closes it when closed."""
    if codec == "gzip":
        # mtime=0 and no file name keep the bytes reproducible
        return _ClosingGzip(raw, "wb")  # type: ignore[return-value]
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=True)
    return raw


class _ClosingGzip(gzip.GzipFile):
    """A gzip stream over ``raw`` that closes ``raw`` too."""

    def __init__(self, raw: BinaryIO, mode: str) -> None:
        super().__init__(filename="", mode=mode, fileobj=raw, mtime=0)
        self._raw = raw

    def close(self) -> None:
        super().close()
        self._raw.close()
