"""Open files by codec (none, gzip, zstd), chosen from the file name."""

from __future__ import annotations

import gzip
import io
import queue
import sys
import threading
from typing import Any, BinaryIO

__all__ = ["CODEC_EXTENSIONS", "compressing_writer", "open_for_reading"]

CODEC_EXTENSIONS = {"none": "", "gzip": ".gz", "zstd": ".zst"}


class _HashingRaw(io.RawIOBase):
    """A raw reader that feeds every byte it reads to ``digest``, on a second thread.

    ``hashlib`` releases the GIL on large buffers, so hashing runs beside parsing on
    another core; :meth:`close` waits until every byte is hashed.
    """

    def __init__(self, raw: BinaryIO, digest: Any) -> None:
        self._raw = raw
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._hash, args=(digest,), daemon=True)
        self._thread.start()

    def _hash(self, digest: Any) -> None:
        while (chunk := self._queue.get()) is not None:
            digest.update(chunk)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._queue.put(bytes(memoryview(buffer)[:n]))
        return n or 0

    def close(self) -> None:
        if not self.closed:
            self._queue.put(None)
            self._thread.join()
            if self._raw is not sys.stdin.buffer:
                self._raw.close()
        super().close()


def open_for_reading(path: str, *, digest: Any = None) -> BinaryIO:
    """A binary stream of the decompressed bytes of ``path`` (``-``: standard input).

    With ``digest`` (a ``hashlib`` object), the file's bytes as stored are hashed while
    they are read, so an input's sha256 costs no second pass.
    """
    raw: BinaryIO = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    if digest is not None:
        raw = io.BufferedReader(_HashingRaw(raw, digest), 1 << 20)
    if path.endswith(".gz"):
        return _ClosingGzip(raw, "rb")  # type: ignore[return-value]
    if path.endswith(".zst"):
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader)
    return raw


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
