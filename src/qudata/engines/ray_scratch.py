"""A Ray task in a scratch folder of its node, its staging files on object storage.

The task side of :mod:`qudata.engines.ray_staging` (see there): :func:`mirrored` fetches
the files a call reads from the prefix (each checked against the sha256 its writer
computed, or the digest a killed run's record names it by; a node keeps what it
fetched, by that digest, until the run ends), runs the call
with the driver's staging path replaced by the scratch folder, and uploads what the
call wrote or changed (with its size and sha256); what it deleted, the driver deletes
from the prefix once it has the result (a task run again still finds its inputs).
Storage failures are :class:`~qudata.errors.StorageError` naming the URI.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import xxhash

from qudata.errors import StorageError
from qudata.io.hashing import file_hexdigest
from qudata.io.on_demand import on_demand
from qudata.io.uri import filesystem, storage_error
from qudata.plan.job import Job

__all__ = ["Changes", "Mismatch", "Sync", "download", "mirrored", "remove", "remove_scratch",
           "run_folder"]  # fmt: skip

_BLOCK = 8 << 20
_SMALL = 16 << 10
#: Files a task fetches or uploads at once.
TRANSFERS = 8


@dataclass(frozen=True)
class Sync:
    """What one task needs to work in a scratch folder: the prefix, the driver's staging
    folder (replaced by the scratch in the call's arguments), the run (its node cache)
    and the files to fetch (path under the staging -> sha256)."""

    prefix: str
    root: str
    run: str
    fetch: dict[str, str] = field(default_factory=dict)
    #: what a killed run's records name (``--resume``): missing or changed, it is left
    #: out (the stage computes it again), not an error
    optional: frozenset[str] = frozenset()
    #: fetched only when the call asks for it (:func:`qudata.io.on_demand.need`)
    lazy: dict[str, str] = field(default_factory=dict)


@dataclass
class Changes:
    """What a task's call left: files written or changed (path -> [size, sha256]) and
    the fetched files it removed."""

    written: dict[str, tuple[int, str]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    fetched: int = 0  # bytes downloaded (not found in the node's cache)
    #: the bytes of small ``.json`` files written (what the driver reads itself: the dedup
    #: step's ``meta.json``), so that it need not fetch them one by one
    small: dict[str, bytes] = field(default_factory=dict)


class Mismatch(StorageError):
    """A staged file missing from the prefix, or not the bytes its task wrote."""


def _hash_of(expected: str) -> Any:
    """A new hash of the kind ``expected`` is: xxh3-128 (32 hex digits: what a killed
    run's record names its files by, :func:`qudata.stages.resume.file_digest`), else
    sha256 (what a task computed of what it uploaded)."""
    return xxhash.xxh3_128() if len(expected) == 32 else hashlib.sha256()


def download(fs: Any, key: str, uri: str, dest: Path, sha256: str) -> None:
    """``key`` to ``dest`` (by rename), its digest (``sha256``, or the xxh3-128 a
    record names it by: :func:`_hash_of`) checked while it is fetched."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    digest = _hash_of(sha256)
    try:
        with fs.open(key, "rb", block_size=_BLOCK) as stream, open(temp, "wb") as out:
            while block := stream.read(_BLOCK):
                digest.update(block)
                out.write(block)
    except FileNotFoundError:
        temp.unlink(missing_ok=True)
        raise Mismatch(f"{uri}: missing from the staging prefix", uri=uri) from None
    except OSError as exc:  # this node's disk, or the store through fsspec
        temp.unlink(missing_ok=True)
        raise storage_error(uri, exc, "cannot fetch") from None
    except Exception as exc:  # botocore, aiohttp, gcsfs
        temp.unlink(missing_ok=True)
        raise storage_error(uri, exc, "cannot fetch") from None
    if digest.hexdigest() != sha256:
        temp.unlink(missing_ok=True)
        raise Mismatch(
            f"{uri}: the staged file is not the one its task wrote ({digest.name.lower()} differs)",
            uri=uri,
        )
    os.replace(temp, dest)


def _upload(fs: Any, local: Path, key: str, uri: str, folders: bool) -> None:
    try:
        if folders:  # a file:// prefix: its folders first (a store has none)
            fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(local), key)
    except Exception as exc:
        raise storage_error(uri, exc, "cannot upload") from None


def _is_local(fs: Any) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols


def run_folder(run: str) -> Path:
    return Path(tempfile.gettempdir()) / f"qudata-mirror-{run}"


def _rewrite(value: Any, root: Path, scratch: Path) -> Any:
    """``value`` with every path under ``root`` moved under ``scratch``."""
    if isinstance(value, Job):
        return replace(value, staging=_rewrite(value.staging, root, scratch))
    if isinstance(value, Path):
        return scratch / value.relative_to(root) if value.is_relative_to(root) else value
    if isinstance(value, tuple | list):
        return type(value)(_rewrite(v, root, scratch) for v in value)
    return value


def mirrored(
    function: Callable[..., Any], args: tuple[Any, ...], sync: Sync
) -> tuple[Any, Changes]:
    """In a Ray task: ``function(*args)`` in a scratch folder of this node, its inputs
    fetched from ``sync.prefix`` and its outputs uploaded there (:data:`TRANSFERS` at
    a time)."""
    fs, base = filesystem(sync.prefix)
    base = base.rstrip("/")
    run = run_folder(sync.run)
    scratch = run / f"w{os.getpid()}"  # one task at a time per worker process
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    changes = Changes()

    def fetch(item: tuple[str, str]) -> tuple[str, tuple[int, int] | None, int]:
        relative, sha = item
        cached = run / "cache" / sha
        downloaded = 0
        if not cached.is_file():
            try:
                download(fs, f"{base}/{relative}", f"{sync.prefix}/{relative}", cached, sha)
            except Mismatch:
                if relative not in sync.optional:
                    raise
                return relative, None, 0  # --resume: the stage computes it again
            downloaded = cached.stat().st_size
        dest = scratch / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, dest)
        stat = dest.stat()
        return relative, (stat.st_size, stat.st_mtime_ns), downloaded

    folders = _is_local(fs)

    def upload(path: Path) -> tuple[str, int, str] | None:
        relative = path.relative_to(scratch).as_posix()
        stat = path.stat()
        if fetched.get(relative) == (stat.st_size, stat.st_mtime_ns):
            return None  # fetched and left as it was
        sha = file_hexdigest(path, hashlib.sha256())
        _upload(fs, path, f"{base}/{relative}", f"{sync.prefix}/{relative}", folders)
        return relative, stat.st_size, sha

    try:
        with ThreadPoolExecutor(TRANSFERS) as pool:
            fetched: dict[str, tuple[int, int]] = {}
            for relative, seen, downloaded in pool.map(fetch, sorted(sync.fetch.items())):
                changes.fetched += downloaded
                if seen is not None:
                    fetched[relative] = seen

            def needed(path: Path) -> None:  # a file the call's data names, on first use
                relative = path.relative_to(scratch).as_posix()
                if relative in sync.lazy and relative not in fetched:
                    _, seen, downloaded = fetch((relative, sync.lazy[relative]))
                    changes.fetched += downloaded
                    if seen is not None:
                        fetched[relative] = seen

            with on_demand(needed):
                result = function(*_rewrite(args, Path(sync.root), scratch))
            for done in pool.map(upload, sorted(_files(scratch))):
                if done is not None:
                    relative, size, sha = done
                    changes.written[relative] = (size, sha)
                    if relative.endswith(".json") and size <= _SMALL:
                        changes.small[relative] = (scratch / relative).read_bytes()
        # what the call deleted is deleted by the driver, once it has the result: a task
        # run again (its node lost before it replied) still finds its inputs
        changes.removed = [r for r in fetched if not (scratch / r).exists()]
        return result, changes
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _files(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def remove(fs: Any, key: str, uri: str) -> None:
    try:
        fs.rm_file(key)
    except FileNotFoundError:
        pass
    except Exception as exc:
        raise storage_error(uri, exc, "cannot delete") from None


def remove_scratch(run: str) -> None:
    """On one node: what the run's tasks left there (their cache of fetched files)."""
    shutil.rmtree(run_folder(run), ignore_errors=True)
