"""One input's decoded bytes, with errors that say which file, where and why.

:func:`open_input` opens a file (or standard input), decodes it by its name (gzip,
zstd: every frame, and a file ending inside a frame is an error, never a quiet end),
counts the stored bytes read (the offset named in errors) and can hash them on a
second thread; a URI is read in ranged requests (:class:`qudata.io.uri.RangedReader`).
With ``regular_only`` anything but a regular file is refused without being opened for a
blocking read (a FIFO would hang).
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from qudata.io.hashing import HashThread
from qudata.io.lines import LongLine, read_lines

__all__ = ["InputStream", "open_input"]


class _GzipReader(gzip.GzipFile):
    """A gzip stream that closes the stored file under it too (as the other codecs do)."""

    def __init__(self, raw: Any) -> None:
        super().__init__(filename="", mode="rb", fileobj=raw)
        self._raw = raw

    def close(self) -> None:
        super().close()
        self._raw.close()


class _StoredRaw(io.RawIOBase):
    """The stored bytes of an input: counts them (``offset``) and, with ``digest``, hashes
    them on a second thread.

    ``hashlib`` releases the GIL on large buffers, so hashing runs beside parsing on
    another core; :meth:`close` waits until every byte is hashed.
    """

    def __init__(self, raw: BinaryIO, digest: Any = None, limit: int | None = None) -> None:
        self._raw = raw
        self.offset = 0
        self._limit = limit  # read at most this many bytes (a partition's byte range)
        self._hashing = None if digest is None else HashThread(digest)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._limit is not None:
            left = self._limit - self.offset
            if left <= 0:
                return 0
            if len(buffer) > left:
                buffer = memoryview(buffer)[:left]
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.offset += n
            if self._hashing is not None:
                self._hashing.update(bytes(memoryview(buffer)[:n]))
        return n or 0

    def close(self) -> None:
        if not self.closed:
            if self._hashing is not None:
                self._hashing.close()
            if self._raw is not sys.stdin.buffer:
                self._raw.close()
        super().close()


class _ZstdRaw(io.RawIOBase):
    """Decompressed zstd: every frame of the file (``zstd`` and ``pzstd`` may write several),
    and an error, not a quiet end, when the file ends inside a frame.

    Input is fed 2 KB at a time: a zstd block expands at most 32768 times, so one step
    never makes more than 64 MB however the data was crafted.
    """

    _STEP = 2048

    def __init__(self, stored: _StoredRaw) -> None:
        import zstandard

        self._stored = stored
        self._source = io.BufferedReader(stored, 1 << 16)
        self._dctx = zstandard.ZstdDecompressor()
        self._frame: Any = None
        self._input = b""
        self._output = b""
        self._done = False
        self.fed = 0  # stored bytes given to the decompressor

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._output and not self._done:
            self._step()
        n = min(len(buffer), len(self._output))
        buffer[:n] = self._output[:n]
        self._output = self._output[n:]
        return n

    def _step(self) -> None:
        if not self._input:
            self._input = self._source.read(1 << 16)
            if not self._input:
                if self._frame is not None and not self._frame.eof:
                    raise EOFError("the file ends inside a zstd frame")
                self._done = True
                return
        if self._frame is None or self._frame.eof:
            self._frame = self._dctx.decompressobj()
        piece, self._input = self._input[: self._STEP], self._input[self._STEP :]
        self.fed += len(piece)
        self._output = self._frame.decompress(piece)
        if self._frame.eof and self._frame.unused_data:
            self.fed -= len(self._frame.unused_data)
            self._input = self._frame.unused_data + self._input

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()


def _codec(path: str) -> str:
    if path.endswith(".gz"):
        return "gzip"
    if path.endswith(".zst"):
        return "zstd"
    return "none"


def _codec_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [EOFError, zlib.error, gzip.BadGzipFile]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - zstandard is a dependency
        pass
    return tuple(errors)


_WHAT = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def _open_regular(path: str, name: str) -> BinaryIO:
    """Open ``path`` only if it is a regular file, without ever blocking (a FIFO would)."""
    from qudata.errors import InputError

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except PermissionError:
        raise InputError(
            "permission denied: not read", source=name, reason="permission_denied"
        ) from None
    except OSError as exc:
        raise InputError(
            f"cannot open: {exc.strerror or exc}", source=name, reason="unreadable"
        ) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = _WHAT.get(stat.S_IFMT(mode), "not a regular file")
        raise InputError(f"{what}: not read", source=name, reason="not_a_regular_file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=0)


class InputStream:
    """The decoded bytes of one input, read with ``readline`` / ``read``.

    A codec failure (a truncated or corrupt ``.gz`` / ``.zst``) raises
    :class:`~qudata.errors.InputError` with reason ``truncated_input``, naming the byte
    offset in the stored file; an I/O failure raises it with reason ``unreadable``.
    """

    def __init__(
        self,
        path: str,
        *,
        name: str | None = None,
        digest: Any = None,
        regular_only: bool = False,
        span: tuple[int, int] | None = None,
    ) -> None:
        self.path = path
        self.name = name or path
        self.codec = "none" if path == "-" else _codec(path)
        limit = None
        if path == "-":
            raw: BinaryIO = sys.stdin.buffer
        elif "://" in path:  # a URI: ranged requests of its span (qudata.io.uri)
            from qudata.io.uri import RangedReader

            raw = RangedReader(path, *(span or (0, None)))  # type: ignore[assignment]
            span = None
        elif regular_only:
            raw = _open_regular(path, self.name)
        else:
            raw = open(path, "rb")  # noqa: SIM115
        if span is not None:  # a byte range of an uncompressed file: a partition
            raw.seek(span[0])
            limit = span[1] - span[0]
        self._stored = _StoredRaw(raw, digest, limit)
        self._zstd: _ZstdRaw | None = None
        self.stream: Any
        if self.codec == "gzip":
            self.stream = _GzipReader(self._stored)
        elif self.codec == "zstd":
            self._zstd = _ZstdRaw(self._stored)
            self.stream = io.BufferedReader(self._zstd, 1 << 20)
        else:
            self.stream = io.BufferedReader(self._stored, 1 << 20)
        self._errors: tuple[type[BaseException], ...] = (*_codec_errors(), OSError)

    @property
    def offset(self) -> int:
        """How many stored bytes were read (for zstd: decoded) so far."""
        return self._zstd.fed if self._zstd is not None else self._stored.offset

    def _failed(self, exc: BaseException) -> BaseException:
        from qudata.errors import InputError

        cause = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, self._errors) or (self.codec != "none" and isinstance(exc, OSError)):
            name = {"gzip": "gzip", "zstd": "zstd"}.get(self.codec, self.codec)
            return InputError(
                f"truncated or corrupt {name} data at byte {self.offset:,}: {cause}",
                source=self.name,
                reason="truncated_input",
            )
        if isinstance(exc, OSError):
            strerror = exc.strerror or cause
            return InputError(
                f"cannot read at byte {self.offset:,}: {strerror}",
                source=self.name,
                reason="unreadable",
            )
        return exc

    def lines(self, max_bytes: int) -> Iterator[bytes | LongLine]:
        """The lines of :func:`qudata.io.lines.read_lines`, with codec errors translated."""
        try:
            yield from read_lines(self.stream, max_bytes)
        except self._errors as exc:
            raise self._failed(exc) from None

    def readline(self, size: int = -1) -> bytes:
        try:
            return bytes(self.stream.readline(size))
        except self._errors as exc:
            raise self._failed(exc) from None

    def read(self, size: int = -1) -> bytes:
        try:
            return bytes(self.stream.read(size))
        except self._errors as exc:
            raise self._failed(exc) from None

    def close(self) -> None:
        self.stream.close()
        self._stored.close()

    def __enter__(self) -> InputStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_input(
    path: str,
    *,
    name: str | None = None,
    digest: Any = None,
    regular_only: bool = False,
    span: tuple[int, int] | None = None,
) -> InputStream:
    """An :class:`InputStream` over ``path`` (``-``: standard input), decoded by its name.

    With ``digest`` (a ``hashlib`` object), the file's bytes as stored are hashed while
    they are read, so an input's sha256 costs no second pass. ``regular_only`` refuses,
    without blocking, anything but a regular file (reason ``not_a_regular_file``).
    ``span``: only the bytes ``[start, end)`` of an uncompressed file (a partition).
    """
    return InputStream(path, name=name, digest=digest, regular_only=regular_only, span=span)
