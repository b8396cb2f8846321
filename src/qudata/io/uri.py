"""Inputs named by URI (``s3://bucket/x.jsonl``, ``gs://``, ``file://``), read through fsspec.

A remote input is read where it is, never copied whole first: :class:`RangedReader`
fetches the bytes ``[start, end)`` of a partition in ranged requests of a few MiB, so
a run fetches each byte about twice (the two passes), and its sizes come from the
listing (:func:`remember`, :func:`remote_size`), so a large remote JSON Lines file is
cut into partitions like a local one. Only Parquet, read by random access through
pyarrow, still goes through a local copy (:func:`local_copy`).

Storage options (``storage.options`` of the configuration: per protocol, e.g. ``{"s3":
{"endpoint_url": ...}}``) are fsspec's per-protocol defaults (:func:`configure`); the
driver and every Ray worker set them before they touch a URI. Storage failures
(botocore, aiohttp, gcsfs errors) become :class:`~qudata.errors.StorageError` naming
the URI: a failure of the storage, not of the input, so the run fails (exit 1) rather
than rejecting the input.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

from qudata.errors import InputError, MissingExtraError, StorageError
from qudata.io.sources import Source

__all__ = [
    "RangedReader",
    "configure",
    "current_identities",
    "current_identity",
    "fetch_many",
    "filesystem",
    "is_uri",
    "listed",
    "local_copy",
    "open_stored",
    "remember",
    "remember_listed",
    "remote_identity",
    "remote_size",
    "storage_error",
]

#: The bytes one ranged request fetches (a partition's last request stops at its end).
CHUNK = 8 << 20
#: Small remote files fetched at once (:func:`fetch_many`).
CONCURRENT_FETCHES = 16
#: The inputs one listing found from which :func:`current_identities` makes that
#: listing again rather than asking for each file's metadata.
LIST_AT = 8

_EXTRAS = {"s3": ("s3", "s3fs"), "s3a": ("s3", "s3fs"), "gs": ("gcs", "gcsfs"),
           "gcs": ("gcs", "gcsfs")}  # fmt: skip
#: Where :func:`configure` leaves the options for worker processes of this one.
OPTIONS_VARIABLE = "QUDATA_STORAGE_OPTIONS"
_configured: dict[str, dict[str, Any]] = {}
_info: dict[str, dict[str, Any]] = {}  # full URI -> its listing entry (size, ETag, ...)
_prefetched: dict[str, bytes] = {}  # the small files of the slice being read
#: full URI -> the listing that found it: ("ls", folder) or ("glob", pattern)
_found_by: dict[str, tuple[str, str]] = {}


def is_uri(path: str) -> bool:
    """``s3://bucket/x.jsonl``, ``file:///data/x.jsonl``: read through fsspec."""
    return "://" in path


def configure(options: Mapping[str, Mapping[str, Any]]) -> None:
    """Make ``options`` (per protocol: ``{"s3": {"endpoint_url": ...}}``) fsspec's
    defaults in this process and the processes it starts (the variable
    :data:`OPTIONS_VARIABLE`); filesystems made before with other options are dropped."""
    wanted = {str(k): dict(v) for k, v in options.items()}
    if wanted == _configured:
        return
    if wanted:  # for the local engine's worker processes, started after this
        os.environ[OPTIONS_VARIABLE] = json.dumps(wanted)
    else:
        os.environ.pop(OPTIONS_VARIABLE, None)
    import fsspec
    import fsspec.config

    for protocol in set(_configured) | set(wanted):
        fsspec.config.conf.pop(protocol, None)
        if protocol in wanted:
            fsspec.config.conf[protocol] = wanted[protocol]
        with suppress(ImportError, ValueError):
            fsspec.get_filesystem_class(protocol).clear_instance_cache()
    _configured.clear()
    _configured.update(wanted)
    _info.clear()
    _found_by.clear()


def filesystem(uri: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``uri`` and the path in it (a missing package is one
    line naming the extra)."""
    protocol = uri.split("://", 1)[0]
    extra, package = _EXTRAS.get(protocol, ("s3", "fsspec"))
    try:
        import fsspec
    except ImportError:
        raise MissingExtraError(extra, package, feature=f"Reading {uri}") from None
    if not _configured and OPTIONS_VARIABLE in os.environ:  # a worker of the local engine
        configure(json.loads(os.environ[OPTIONS_VARIABLE]))
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except ImportError:
        if protocol not in _EXTRAS:
            extra, package = protocol, protocol + "fs"
        raise MissingExtraError(extra, package, feature=f"Reading {uri}") from None
    except ValueError as exc:
        raise StorageError(f"{uri}: {exc}") from None
    return fs, str(path)


def storage_error(uri: str, exc: BaseException, doing: str = "cannot read") -> StorageError:
    """``exc`` (botocore, aiohttp, an ``OSError`` of the storage) as one line naming
    ``uri``."""
    cause = " ".join(str(exc).split()) or type(exc).__name__
    return StorageError(f"{uri}: {doing}: {cause}", uri=uri)


def remember(
    fs: Any, entries: Iterable[Mapping[str, Any]], found_by: tuple[str, str] | None = None
) -> None:
    """Keep the listing entries (size, ETag, version) of files a walk found; ``found_by``:
    the listing that gave them (``("ls", folder)``, ``("glob", pattern)``), which
    :func:`current_identities` makes again."""
    for entry in entries:
        if entry.get("type") != "directory":
            uri = fs.unstrip_protocol(entry["name"])
            _info[uri] = dict(entry)
            if found_by is not None:
                _found_by[uri] = found_by


def listed(uris: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The listing entries this process holds of ``uris``, cut to their size and
    identity (small and picklable: a job carries them to its workers, which
    :func:`remember_listed` them)."""
    out = {}
    for uri in uris:
        entry = _info.get(uri)
        if entry is not None:
            kept = {k: entry[k] for k in ("size", *IDENTITY_KEYS) if entry.get(k) is not None}
            out[uri] = {
                k: v if isinstance(v, int | float | str) else str(v) for k, v in kept.items()
            }
    return out


def remember_listed(entries: Mapping[str, Mapping[str, Any]]) -> None:
    """Keep the entries of :func:`listed` (the driver's listing, in a worker): they
    replace what an earlier job run by this worker process knew of the same files."""
    _info.update((uri, dict(entry)) for uri, entry in entries.items())


def _entry(uri: str) -> dict[str, Any]:
    found = _info.get(uri)
    if found is None:
        fs, path = filesystem(uri)
        try:
            found = dict(fs.info(path))
        except FileNotFoundError:
            raise InputError("no such file", source=uri, reason="unreadable") from None
        except Exception as exc:
            raise storage_error(uri, exc) from None
        _info[uri] = found
    return found


def remote_size(uri: str) -> int:
    """The stored size of ``uri`` (from its listing when a walk found it)."""
    return int(_entry(uri).get("size") or 0)


#: The keys of a listing entry that identify an object's bytes (with its size), and
#: their names in :func:`remote_identity` (S3: ETag, VersionId; GCS: generation, md5Hash;
#: Azure: etag; Hugging Face: blob_id; ``file://``: mtime).
IDENTITY_KEYS = {"ETag": "etag", "etag": "etag", "VersionId": "version_id",
                 "version_id": "version_id", "generation": "generation",
                 "md5Hash": "md5_hash", "blob_id": "blob_id", "mtime": "mtime"}  # fmt: skip


def remote_identity(uri: str) -> dict[str, Any]:
    """What says that ``uri`` changed: its size and its ETag, version id or generation
    (what the store gives; ``mtime`` for a ``file://`` URI), as its listing gave them
    when the run started (the fingerprint of ``--resume``, the manifest's input entry)."""
    return _identity(_entry(uri))


def current_identity(uri: str) -> dict[str, Any]:
    """:func:`remote_identity` as the store gives it now (a metadata request, no
    bytes; the listing the run started from is kept)."""
    fs, path = filesystem(uri)
    try:
        fs.invalidate_cache(path)
        return _identity(dict(fs.info(path)))
    except FileNotFoundError:
        return {}  # gone: equal to no identity it had
    except Exception as exc:
        raise storage_error(uri, exc) from None


def current_identities(uris: Iterable[str]) -> dict[str, dict[str, Any]]:
    """:func:`current_identity` of many files: the listing that found :data:`LIST_AT` of
    them or more (a folder's, a glob's: what the run's start paid for already) is made
    again; each of the others is one metadata request (:data:`CONCURRENT_FETCHES` at a
    time). A file not found has ``{}``."""
    groups: dict[tuple[str, str] | None, list[str]] = {}
    for uri in dict.fromkeys(uris):
        groups.setdefault(_found_by.get(uri), []).append(uri)
    found: dict[str, dict[str, Any]] = {}
    alone: list[str] = []
    for how, inside in groups.items():
        if how is None or len(inside) < LIST_AT:
            alone.extend(inside)
            continue
        fs, _ = filesystem(inside[0])
        kind, where = how
        try:
            fs.invalidate_cache()
            listing = fs.ls(where, detail=True) if kind == "ls" else fs.glob(where, detail=True)
        except Exception as exc:
            raise storage_error(fs.unstrip_protocol(where), exc, "cannot list") from None
        entries = listing.values() if isinstance(listing, dict) else listing
        now = {fs.unstrip_protocol(e["name"]): e for e in entries if e.get("type") != "directory"}
        found.update({uri: _identity(now[uri]) if uri in now else {} for uri in inside})
    if alone:
        with ThreadPoolExecutor(min(CONCURRENT_FETCHES, len(alone))) as pool:
            found.update(zip(alone, pool.map(current_identity, alone), strict=True))
    return found


def _identity(entry: Mapping[str, Any]) -> dict[str, Any]:
    identity: dict[str, Any] = {"size": int(entry.get("size") or 0)}
    for key, name in IDENTITY_KEYS.items():
        value = entry.get(key)
        if value is not None and name not in identity:
            identity[name] = value if isinstance(value, int | float | str) else str(value)
    return identity


class RangedReader(io.RawIOBase):
    """The bytes ``[start, end)`` of a remote file (``end`` None: to its end), fetched
    in ranged requests of at most :data:`CHUNK` bytes that never pass ``end``."""

    def __init__(self, uri: str, start: int = 0, end: int | None = None) -> None:
        self.uri = uri
        self._fs, self._path = filesystem(uri)
        self._at = start
        self._end = remote_size(uri) if end is None else end
        self._buffer = b""
        self._used = 0
        self.fetched = 0  # bytes this reader fetched
        if start == 0 and end is None and uri in _prefetched:  # fetched with its slice
            self._buffer = _prefetched.pop(uri)
            self._at = self._end

    def readable(self) -> bool:
        return True

    def _fetch(self) -> None:
        stop = min(self._end, self._at + CHUNK)
        try:
            data = self._fs.cat_file(self._path, start=self._at, end=stop)
        except Exception as exc:
            raise storage_error(self.uri, exc) from None
        if len(data) != stop - self._at:
            raise StorageError(
                f"{self.uri}: the object changed while it was read "
                f"(got {len(data):,} of {stop - self._at:,} bytes at byte {self._at:,})",
                uri=self.uri,
            )
        self.fetched += len(data)
        self._at = stop
        self._buffer, self._used = data, 0

    def readinto(self, buffer: Any) -> int:
        if self._used >= len(self._buffer):
            if self._at >= self._end:
                return 0
            self._fetch()
        n = min(len(buffer), len(self._buffer) - self._used)
        memoryview(buffer)[:n] = self._buffer[self._used : self._used + n]
        self._used += n
        return n


def open_stored(path: str, span: tuple[int, int] | None = None) -> Any:
    """A binary reader of ``path`` (a local path or a URI), from ``span``'s start to its
    end (``None``: the whole file)."""
    if is_uri(path):
        return io.BufferedReader(RangedReader(path, *(span or (0, None))), 1 << 20)
    handle = open(path, "rb")  # noqa: SIM115
    if span is not None:
        handle.seek(span[0])
    return handle


def fetch_many(uris: list[str]) -> dict[str, bytes]:
    """The bytes of many small remote files, fetched :data:`CONCURRENT_FETCHES` at a
    time (a slice of text files); a file that failed is left out (reading it again
    alone reports why)."""

    def one(uri: str) -> bytes | None:
        try:
            return bytes(RangedReader(uri, 0, None).read() or b"")
        except (StorageError, InputError):
            return None

    with ThreadPoolExecutor(min(CONCURRENT_FETCHES, max(1, len(uris)))) as pool:
        fetched = dict(zip(uris, pool.map(one, uris), strict=True))
    return {uri: data for uri, data in fetched.items() if data is not None}


def _suffixes(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.split(".", 1)[1] if "." in name else ""


@contextmanager
def local_copy(source: Source, batch: tuple[Source, ...] = ()) -> Iterator[Source]:
    """``source`` itself, or for a remote Parquet file (read by random access) a
    temporary local copy that keeps its name; other remote files are read in ranges.

    ``batch``: the files of the slice ``source`` is read with; when ``source`` is the
    first of several remote files, they are all fetched now, concurrently."""
    if not is_uri(source.path) or source.kind != "parquet":
        if len(batch) > 1 and source is batch[0] and is_uri(source.path):
            _prefetched.clear()
            _prefetched.update(fetch_many([s.path for s in batch if s.problem is None]))
        yield source
        return
    fs, path = filesystem(source.path)
    folder = tempfile.mkdtemp(prefix="qudata-input-")
    try:
        local = os.path.join(folder, "input" + _suffixes(source.path))
        try:
            with fs.open(path, "rb") as remote, open(local, "wb") as out:
                shutil.copyfileobj(remote, out, 1 << 20)
        except Exception as exc:
            raise storage_error(source.path, exc) from None
        yield Source(local, source.kind, source.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
