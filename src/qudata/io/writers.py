"""Safe writers: a file is written under a temporary name and renamed when complete.

A crash therefore never leaves a complete-looking partial file; the size and
sha256 of the bytes on disk are computed while writing, not by reading again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from qudata.io.compression import compressing_writer
from qudata.io.hashing import HashThread

__all__ = ["AtomicFile"]


class _HashingFile:
    """A raw file that hashes and counts what goes to disk.

    Writes are gathered into 1 MiB chunks, hashed on a second thread (``hashlib``
    releases the GIL on large buffers) and written; :meth:`close` waits for both.
    """

    _CHUNK = 1 << 20

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.digest = hashlib.sha256()
        self.size = 0
        self._buffer = bytearray()
        self._hashing = HashThread(self.digest)

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= self._CHUNK:
            self._spill()
        return len(data)

    def _spill(self) -> None:
        chunk = bytes(self._buffer)
        self._buffer.clear()
        self._hashing.update(chunk)
        self._file.write(chunk)

    def flush(self) -> None:
        self._spill()
        self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._spill()  # a full disk raises here: the thread and the file end all the same
        finally:
            self._hashing.close()
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed


class AtomicFile:
    """Write ``path`` atomically, optionally compressed (``gzip``, ``zstd``); a context manager.

    Example::

        with AtomicFile(Path("out.jsonl")) as out:
            out.write(b'{"text": "hi"}\\n')
        out.sha256, out.bytes_written   # of the bytes on disk
    """

    def __init__(self, path: Path, *, codec: str = "none") -> None:
        self.path = path
        self.codec = codec
        self.temp_path = path.with_name(f".{path.name}.partial-{os.getpid()}")
        self.bytes_written = 0
        self.sha256 = ""
        self._raw: _HashingFile | None = None
        self._stream: BinaryIO | None = None

    def __enter__(self) -> AtomicFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._raw = _HashingFile(self.temp_path)
        self._stream = compressing_writer(self._raw, self.codec)  # type: ignore[arg-type]
        return self

    def write(self, data: bytes) -> None:
        assert self._stream is not None, "AtomicFile used outside 'with'"
        self._stream.write(data)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stream is not None and self._raw is not None
        try:
            self._stream.close()
        except BaseException:  # the last bytes did not go (a full disk): no partial file
            exc_type = exc_type or OSError
            raise
        finally:
            if not self._raw.closed:
                self._raw.close()
            if exc_type is not None:
                self.temp_path.unlink(missing_ok=True)
        if exc_type is not None:
            return
        self.sha256 = self._raw.digest.hexdigest()
        self.bytes_written = self._raw.size
        os.replace(self.temp_path, self.path)
