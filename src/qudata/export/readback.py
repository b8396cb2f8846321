"""Reading a dataset's file back: its size, its sha256, and the records it holds.

The publish gate (:mod:`qudata.export.verify`) checks each file the manifest lists with
:func:`check_file`; any difference is a :class:`Mismatch` naming the file and what
differs. Records are counted from the bytes, by the file's name and format:

- ``.jsonl`` (``.gz``, ``.zst``): lines; ``.parquet``: rows (footer metadata);
- ``plain`` ``.txt``: the separator between blocks, plus one;
- ``llmbuilder`` ``.txt``: the separator lines; ``.npy``: its header's length matches
  its size (the documents are not marked in the ids);
- ``megatron`` ``.idx``: the sequence count of its header, the sum of its sequence
  lengths is the tokens of its ``.bin``, whose size it must match.

Files are read through a small file-system interface (:class:`FileSystem`: ``open``,
``isfile``, ``isdir``, ``ls``, the names of ``fsspec``'s), so the same checks serve a
local folder (:class:`LocalFileSystem`) and object storage.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol

from qudata.errors import IntegrityError
from qudata.io.hashing import HashThread

__all__ = ["FileSystem", "LocalFileSystem", "Mismatch", "check_file", "count_lines", "fail"]

_CHUNK = 1 << 22


class FileSystem(Protocol):
    """What the gate needs of a file system (a subset of ``fsspec``'s interface)."""

    def open(self, path: str, mode: str = "rb") -> IO[bytes]: ...
    def isfile(self, path: str) -> bool: ...
    def isdir(self, path: str) -> bool: ...
    def ls(self, path: str, detail: bool = False) -> list[str]: ...


class LocalFileSystem:
    """Local paths; a symbolic link, a FIFO or a device is not a file here."""

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        if mode != "rb":
            raise ValueError("the gate only reads")
        return open(path, "rb")

    def isfile(self, path: str) -> bool:
        try:
            return stat.S_ISREG(os.lstat(path).st_mode)
        except OSError:
            return False

    def isdir(self, path: str) -> bool:
        try:
            return stat.S_ISDIR(os.lstat(path).st_mode)
        except OSError:
            return False

    def ls(self, path: str, detail: bool = False) -> list[str]:
        return sorted(f"{path}/{name}" for name in os.listdir(path))


class Mismatch(IntegrityError):
    """One difference between a dataset and its manifest: the file (or ``manifest.json``,
    or a format's name) and what differs."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path}: {what}")
        self.path, self.what = path, what


def fail(path: str, what: str) -> Mismatch:
    """The :class:`Mismatch` of ``path``."""
    return Mismatch(path, what)


def check_file(
    fs: FileSystem, root: str, fmt: str, entry: dict[str, Any], options: dict[str, Any]
) -> None:
    relative = entry["path"]
    if relative.startswith("/") or ".." in relative.split("/"):
        raise fail(relative, "a file outside the dataset folder")
    path = f"{root}/{relative}"
    if not fs.isfile(path):
        raise fail(relative, "missing (the manifest lists it)")
    counter = _counter(fmt, relative, options)
    digest = hashlib.sha256()
    hashing = HashThread(digest, depth=2)
    try:
        with fs.open(path, "rb") as raw:
            stream = _Hashing(raw, hashing)
            found = counter(stream)
            stream.drain()
            size = stream.size
    finally:
        hashing.close()
    if size != entry["bytes"]:
        raise fail(relative, f"{size:,} bytes, the manifest says {entry['bytes']:,}")
    if digest.hexdigest() != entry["sha256"]:
        raise fail(relative, "its sha256 is not the one the manifest gives")
    if isinstance(found, _Megatron):
        _check_megatron(fs, root, relative, entry, found)
        return
    if found is not None and found != entry["records"]:
        raise fail(relative, f"holds {found:,} records, the manifest says {entry['records']:,}")


class _Hashing:
    """A file read through: its bytes are counted as they are read, and hashed on a second
    thread (:class:`~qudata.io.hashing.HashThread`) while they are counted."""

    def __init__(self, raw: IO[bytes], hashing: HashThread) -> None:
        self.raw, self.hashing, self.size = raw, hashing, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if data:
            self.hashing.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


class _Megatron:
    """What an ``.idx`` says: its sequences, their tokens, the ``.bin`` bytes."""

    def __init__(self, sequences: int, tokens: int, bin_bytes: int) -> None:
        self.sequences, self.tokens, self.bin_bytes = sequences, tokens, bin_bytes


def _counter(fmt: str, path: str, options: dict[str, Any]) -> Callable[[Any], Any]:
    """How to count the records of ``path`` from its bytes (None: not countable)."""
    name = path.rsplit("/", 1)[-1]
    for suffix, decode in ((".gz", _gunzip), (".zst", _unzstd)):
        if name.endswith(suffix):
            inner = _counter(fmt, path[: -len(suffix)], options)
            return lambda stream: inner(decode(stream))
    if name.endswith(".jsonl"):
        return count_lines
    if name.endswith(".parquet"):
        return _parquet_rows
    if name.endswith(".idx"):
        return _megatron_index
    if name.endswith(".txt") and fmt == "plain":
        mark = ("\n" + str(options.get("separator", "\n---\n")) + "\n").encode()
        return lambda stream: _count_marks(stream, mark, plus_one=True)
    if name.endswith(".txt") and fmt == "llmbuilder":
        mark = ("\n" + str(options.get("separator", "<|endoftext|>")) + "\n").encode()
        return lambda stream: _count_marks(stream, mark, prefix=b"\n")
    if name.endswith(".npy"):
        return _npy_length
    return lambda stream: None


def _chunks(stream: Any) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def count_lines(stream: Any) -> int:
    """The lines of ``stream`` (a last line without its newline counts)."""
    count, last = 0, b"\n"
    for chunk in _chunks(stream):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    return count + (last != b"\n")


def _count_marks(stream: Any, mark: bytes, *, prefix: bytes = b"", plus_one: bool = False) -> int:
    """Occurrences of ``mark`` in ``prefix`` + the stream, a mark that straddles two chunks
    included; ``plus_one``: the blocks between marks (none in an empty file)."""
    count, tail, seen = 0, prefix, False
    for chunk in _chunks(stream):
        seen = True
        data = tail + chunk
        count += data.count(mark)
        # keep what could begin a mark that ends in the next chunk, not a counted one
        end = data.rfind(mark)
        start = max(len(data) - len(mark) + 1, 0 if end < 0 else end + len(mark), 0)
        tail = data[start:]
    return count + 1 if plus_one and seen else count


def _parquet_rows(stream: Any) -> int:
    import pyarrow.parquet as pq

    stream.drain()  # hashed in one sequential pass first: the footer is read by seeking
    rows = int(pq.ParquetFile(stream.raw).metadata.num_rows)
    stream.raw.seek(0, os.SEEK_END)
    return rows


def _megatron_index(stream: Any) -> _Megatron:
    import numpy as np

    head = stream.read(34)
    if len(head) < 34 or not head.startswith(b"MMIDIDX\x00\x00"):
        return _Megatron(-1, 0, 0)
    _version, code, sequences, _documents = struct.unpack("<QBQQ", head[9:34])
    sizes = np.frombuffer(stream.read(4 * sequences), dtype="<i4")
    itemsize = 2 if code == 8 else 4  # uint16 (code 8) or int32 (code 4)
    tokens = int(sizes.sum(dtype=np.int64))
    return _Megatron(sequences, tokens, tokens * itemsize)


def _check_megatron(
    fs: FileSystem, root: str, relative: str, entry: dict[str, Any], found: _Megatron
) -> None:
    if found.sequences != entry["records"]:
        raise fail(
            relative, f"holds {found.sequences:,} sequences, the manifest says {entry['records']:,}"
        )
    data = relative[: -len(".idx")] + ".bin"
    try:
        with fs.open(f"{root}/{data}", "rb") as stream:
            size = stream.seek(0, os.SEEK_END)
    except OSError:
        raise fail(data, "missing (its .idx names it)") from None
    if size != found.bin_bytes:
        raise fail(data, f"{size:,} bytes, its .idx gives {found.bin_bytes:,}")


def _npy_length(stream: Any) -> int | None:
    """``None`` (the documents are not marked); a header that disagrees with the size
    counts as -1 records, which no manifest gives."""
    import numpy as np

    try:
        major, _ = np.lib.format.read_magic(stream)
        read = np.lib.format.read_array_header_1_0
        if major != 1:
            read = np.lib.format.read_array_header_2_0
        shape, _, dtype = read(stream)
    except ValueError:
        return -1
    left = sum(len(chunk) for chunk in _chunks(stream))
    if len(shape) != 1 or left != shape[0] * dtype.itemsize:
        return -1
    return None


def _gunzip(stream: Any) -> Any:
    import gzip

    return gzip.GzipFile(fileobj=stream, mode="rb")


def _unzstd(stream: Any) -> Any:
    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
