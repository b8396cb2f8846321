"""The publish gate: what will be published is read back and reconciled with the account.

Between the commit and the final rename, :func:`verify_dataset` reads every file the
manifest lists and checks that it exists, has its sha256 and byte count, and holds the
records it is said to hold (tokens too where the file itself says how many: Megatron's
``.idx``); that the files of each format add up to the documents and records the
run's account gives the format; that the account balances (``read == accepted +
dropped``, per format ``accepted == documents + dropped``, the inputs' records add up
to ``read``, and their entries are well formed: :func:`qudata.export.inputs.input_problem`);
that ``rejects.jsonl`` holds one line per drop; and that no format folder
holds a file the manifest does not list. Any difference raises
:class:`~qudata.errors.IntegrityError` naming the file and what differs, and nothing
is published. :func:`differences` gives every difference (a :class:`Mismatch`: the
file and what differs): ``qudata validate OUT_DIR`` checks a published dataset with it.

It reads through a small file-system interface (:class:`FileSystem`: ``open``,
``isfile``, ``isdir``, ``ls``, the names of ``fsspec``'s), so the same gate serves a
local folder (:class:`LocalFileSystem`) and, later, object storage.

How records are counted from a file, by its name and format:

- ``.jsonl`` (``.gz``, ``.zst``): lines; ``.parquet``: rows (footer metadata);
- ``plain`` ``.txt``: the separator between blocks, plus one;
- ``llmbuilder`` ``.txt``: the separator lines; ``.npy``: its header's length matches
  its size (the documents are not marked in the ids);
- ``megatron`` ``.idx``: the sequence count of its header, the sum of its sequence
  lengths is the tokens of its ``.bin``, whose size it must match.

Example::

    verify_dataset(LocalFileSystem(), "out/.out.qudata-partial-12", manifest)
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol

import orjson

from qudata.errors import IntegrityError
from qudata.export.inputs import input_problem

__all__ = [
    "FileSystem",
    "LocalFileSystem",
    "Mismatch",
    "differences",
    "manifest_of",
    "verify_dataset",
]

_CHUNK = 1 << 22
_NOT_DATA = {"README.md"}  # a format folder's own files, not in its file list


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


def verify_dataset(fs: FileSystem, root: str, manifest: dict[str, Any]) -> None:
    """Reconcile the dataset under ``root`` with ``manifest`` (the run's account, as
    it will be published); raise :class:`IntegrityError` at the first difference."""
    for found in differences(fs, root, manifest):
        raise IntegrityError(f"{found}; nothing was published")


def differences(fs: FileSystem, root: str, manifest: dict[str, Any]) -> Iterator[Mismatch]:
    """Every difference between the dataset under ``root`` and ``manifest``, in the order
    the gate checks them (the account, then each format's files, then the rejects):
    what the publish gate refuses and ``qudata validate OUT_DIR`` reports. A file's
    checks stop at its first difference; the other files are still checked."""
    yield from _caught(_balance, manifest)
    problem = input_problem(manifest["inputs"])
    if problem is not None:
        yield _fail("manifest.json", problem)
    config = manifest.get("config", {}).get("pack", {})
    for name, stats in manifest["formats"].items():
        listed = set()
        for entry in stats["files"]:
            listed.add(entry["path"])
            yield from _caught(_check_file, fs, root, name, entry, config.get(name) or {})
        yield from _caught(_check_format, name, stats)
        folder = f"{root}/{name}"
        if stats["files"] and not fs.isdir(folder):
            yield _fail(f"{name}/", f"the {name} folder is missing")
        if fs.isdir(folder):
            for path in fs.ls(folder):
                base = path.rsplit("/", 1)[-1]
                if f"{name}/{base}" not in listed and base not in _NOT_DATA:
                    yield _fail(f"{name}/{base}", "a file the manifest does not list")
    yield from _caught(_check_rejects, fs, root, manifest)


def _caught(check: Callable[..., None], *args: Any) -> Iterator[Mismatch]:
    try:
        check(*args)
    except Mismatch as found:
        yield found


def _fail(path: str, what: str) -> Mismatch:
    return Mismatch(path, what)


def _balance(manifest: dict[str, Any]) -> None:
    counts = manifest["counts"]
    read, accepted = counts["read"], counts["accepted"]
    dropped = sum(counts["dropped"].values())
    if read != accepted + dropped:
        raise _fail(
            "manifest.json", f"read {read:,} != accepted {accepted:,} + dropped {dropped:,}"
        )
    inputs = sum(entry["records"] for entry in manifest["inputs"])
    if inputs != read:
        raise _fail("manifest.json", f"the inputs' records add up to {inputs:,}, not read {read:,}")
    for name, stats in manifest["formats"].items():
        lost = sum(stats["dropped"].values())
        if accepted != stats["documents"] + lost:
            raise _fail(
                "manifest.json",
                f"format {name}: accepted {accepted:,} != documents {stats['documents']:,} "
                f"+ dropped {lost:,}",
            )


def _check_format(name: str, stats: dict[str, Any]) -> None:
    """The files of a format add up to the documents and records its account gives
    (packed rows are not documents: a document may be cut across rows and files)."""
    files = [f for f in stats["files"] if not f["path"].endswith(".idx")]
    tokens = stats.get("tokens")
    counted = sum(f["tokens"] or 0 for f in files)
    if tokens is not None and counted != tokens:
        raise _fail(name, f"its files hold {counted:,} tokens, the account {tokens:,}")
    if any(f.get("packing") is not None for f in files):
        return
    documents = sum(f["documents"] for f in files)
    if documents != stats["documents"]:
        raise _fail(
            name, f"its files hold {documents:,} documents, the account {stats['documents']:,}"
        )
    records = sum(f["records"] for f in files)
    if records != stats["records"]:
        raise _fail(name, f"its files hold {records:,} records, the account {stats['records']:,}")


def _check_file(
    fs: FileSystem, root: str, fmt: str, entry: dict[str, Any], options: dict[str, Any]
) -> None:
    relative = entry["path"]
    if relative.startswith("/") or ".." in relative.split("/"):
        raise _fail(relative, "a file outside the dataset folder")
    path = f"{root}/{relative}"
    if not fs.isfile(path):
        raise _fail(relative, "missing (the manifest lists it)")
    counter = _counter(fmt, relative, options)
    digest = hashlib.sha256()
    size = 0
    with fs.open(path, "rb") as raw:
        stream = _Hashing(raw, digest)
        found = counter(stream)
        stream.drain()
        size = stream.size
    if size != entry["bytes"]:
        raise _fail(relative, f"{size:,} bytes, the manifest says {entry['bytes']:,}")
    if digest.hexdigest() != entry["sha256"]:
        raise _fail(relative, "its sha256 is not the one the manifest gives")
    if isinstance(found, _Megatron):
        _check_megatron(fs, root, relative, entry, found)
        return
    if found is not None and found != entry["records"]:
        raise _fail(relative, f"holds {found:,} records, the manifest says {entry['records']:,}")


class _Hashing:
    """A file read through: its bytes are hashed and counted as they are read."""

    def __init__(self, raw: IO[bytes], digest: Any) -> None:
        self.raw, self.digest, self.size = raw, digest, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
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
        return _count_lines
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


def _count_lines(stream: Any) -> int:
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
        raise _fail(
            relative, f"holds {found.sequences:,} sequences, the manifest says {entry['records']:,}"
        )
    data = relative[: -len(".idx")] + ".bin"
    try:
        with fs.open(f"{root}/{data}", "rb") as stream:
            size = stream.seek(0, os.SEEK_END)
    except OSError:
        raise _fail(data, "missing (its .idx names it)") from None
    if size != found.bin_bytes:
        raise _fail(data, f"{size:,} bytes, its .idx gives {found.bin_bytes:,}")


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


def _check_rejects(fs: FileSystem, root: str, manifest: dict[str, Any]) -> None:
    """``rejects.jsonl``: one line per record dropped, before or by a format."""
    path = f"{root}/rejects.jsonl"
    if not fs.isfile(path):
        raise _fail("rejects.jsonl", "missing")
    expected = sum(manifest["counts"]["dropped"].values()) + sum(
        sum(stats["dropped"].values()) for stats in manifest["formats"].values()
    )
    with fs.open(path, "rb") as stream:
        found = _count_lines(stream)
    if found != expected:
        raise _fail("rejects.jsonl", f"holds {found:,} rejects, the account {expected:,}")


def manifest_of(fs: FileSystem, root: str) -> dict[str, Any]:
    """The ``manifest.json`` under ``root``, as read back."""
    with fs.open(f"{root}/manifest.json", "rb") as stream:
        data: dict[str, Any] = orjson.loads(stream.read())
    return data
