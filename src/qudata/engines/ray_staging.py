"""Staging through object storage: Ray tasks on nodes that share no folder.

The stages (:mod:`qudata.stages`, :mod:`qudata.dedup`) read and write files in the run's
staging folder. On a cluster whose nodes share no file system (Kubernetes Ray), the
staging lives under an object-storage prefix instead (``storage.staging: s3://...``, or
beside an ``-o s3://`` output when the staging folder is not shared), and every Ray task
works in a scratch folder of its node:

1. before the call, the task fetches from the prefix only the files that this call
   reads (:meth:`Mirror.sync_for`: the files its arguments name, and per stage function
   a table, e.g. map 2 its partition's dedup verdicts, a format's commit that format's
   parts), each verified against the sha256 its writer computed; a node keeps what it
   fetched (by sha256) for the run, so a file is fetched at most once per node;
2. the call runs with the driver's staging path replaced by the scratch folder;
3. after it, the task uploads every file the call wrote or changed (with its size and
   sha256) and deletes from the prefix what the call deleted; the driver adds these to
   its index of the prefix and downloads (verified) what is not a part file: the
   committed shards and the rejects, which it publishes as from a local staging.

The driver's own steps over the staging (the dedup step's sizes, ``meta.json`` files and
removals, the commit's progress total) use the same index (:class:`Mirror` is their
file view). Nothing read back is unpickled. A storage failure in a task is a
:class:`~qudata.errors.StorageError` naming the URI (Ray runs the task again); the prefix
is removed when the executor closes (the run ended: published or failed; ``--resume``
cannot take up such a run) and every node's scratch with it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qudata.dedup.files import partition_file
from qudata.errors import StorageError
from qudata.io.uri import filesystem, storage_error
from qudata.plan.job import Job

__all__ = ["Changes", "Mirror", "Sync", "mirrored", "remove_scratch", "staging_prefix"]

_BLOCK = 8 << 20
_VERDICTS = (".pos", ".keys", ".verdicts.npz")


def staging_prefix(output: str, staging: str | None) -> str | None:
    """The object-storage prefix a run into ``output`` stages under: in
    ``storage.staging`` when that is a URI, else beside a URI ``output``
    (``s3://b/.out.qudata-staging``); None when there is none."""
    digest = hashlib.sha256(output.rstrip("/").encode("utf-8")).hexdigest()[:16]
    if staging is not None and "://" in staging:
        return f"{staging.rstrip('/')}/qudata-{digest}"
    if "://" not in output:
        return None
    head, _, name = output.rstrip("/").rpartition("/")
    if not name or head.endswith(":/"):  # a bucket's root: nothing beside it
        return None
    return f"{head}/.{name}.qudata-staging"


@dataclass(frozen=True)
class Sync:
    """What one task needs to work in a scratch folder: the prefix, the driver's staging
    folder (replaced by the scratch in the call's arguments), the run (its node cache)
    and the files to fetch (path under the staging -> sha256)."""

    prefix: str
    root: str
    run: str
    fetch: dict[str, str] = field(default_factory=dict)


@dataclass
class Changes:
    """What a task's call left: files written or changed (path -> [size, sha256]) and
    the fetched files it removed."""

    written: dict[str, tuple[int, str]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    fetched: int = 0  # bytes downloaded (not found in the node's cache)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _download(fs: Any, key: str, uri: str, dest: Path, sha256: str) -> None:
    """``key`` to ``dest`` (by rename), its sha256 checked while it is fetched."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    digest = hashlib.sha256()
    try:
        with fs.open(key, "rb", block_size=_BLOCK) as stream, open(temp, "wb") as out:
            while block := stream.read(_BLOCK):
                digest.update(block)
                out.write(block)
    except FileNotFoundError:
        temp.unlink(missing_ok=True)
        raise StorageError(f"{uri}: missing from the staging prefix", uri=uri) from None
    except OSError as exc:  # this node's disk, or the store through fsspec
        temp.unlink(missing_ok=True)
        raise storage_error(uri, exc, "cannot fetch") from None
    except Exception as exc:  # botocore, aiohttp, gcsfs
        temp.unlink(missing_ok=True)
        raise storage_error(uri, exc, "cannot fetch") from None
    if digest.hexdigest() != sha256:
        temp.unlink(missing_ok=True)
        raise StorageError(
            f"{uri}: the staged file is not the one its task wrote (sha256 differs)", uri=uri
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


def _run_folder(run: str) -> Path:
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
    fetched from ``sync.prefix`` and its outputs uploaded there."""
    fs, base = filesystem(sync.prefix)
    base = base.rstrip("/")
    run = _run_folder(sync.run)
    scratch = run / f"w{os.getpid()}"  # one task at a time per worker process
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        fetched: dict[str, tuple[int, int]] = {}
        changes = Changes()
        for relative, sha in sorted(sync.fetch.items()):
            cached = run / "cache" / sha
            if not cached.is_file():
                _download(fs, f"{base}/{relative}", f"{sync.prefix}/{relative}", cached, sha)
                changes.fetched += cached.stat().st_size
            dest = scratch / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, dest)
            stat = dest.stat()
            fetched[relative] = (stat.st_size, stat.st_mtime_ns)
        result = function(*_rewrite(args, Path(sync.root), scratch))
        folders = _is_local(fs)
        for path in sorted(_files(scratch)):
            relative = path.relative_to(scratch).as_posix()
            stat = path.stat()
            if fetched.get(relative) == (stat.st_size, stat.st_mtime_ns):
                continue  # fetched and left as it was
            uri = f"{sync.prefix}/{relative}"
            sha = _sha256(path)
            _upload(fs, path, f"{base}/{relative}", uri, folders)
            changes.written[relative] = (stat.st_size, sha)
        for relative in fetched:
            if not (scratch / relative).exists():
                changes.removed.append(relative)
                _remove(fs, f"{base}/{relative}", f"{sync.prefix}/{relative}")
        return result, changes
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _files(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def _remove(fs: Any, key: str, uri: str) -> None:
    try:
        fs.rm_file(key)
    except FileNotFoundError:
        pass
    except Exception as exc:
        raise storage_error(uri, exc, "cannot delete") from None


def remove_scratch(run: str) -> None:
    """On one node: what the run's tasks left there (their cache of fetched files)."""
    shutil.rmtree(_run_folder(run), ignore_errors=True)


class Mirror:
    """The driver's side: the index of the prefix (path under the staging -> size and
    sha256), the files each call fetches, and the file view of the driver's own steps
    (``size``, ``read_bytes``, ``remove``: as :class:`qudata.executor.LocalFiles`)."""

    def __init__(self, prefix: str, root: Path) -> None:
        self.prefix = prefix.rstrip("/")
        self.root = root
        self.run = uuid.uuid4().hex[:16]
        self.fs, base = filesystem(self.prefix)
        self.base = base.rstrip("/")
        self.index: dict[str, tuple[int, str]] = {}
        self.moved = {"fetched": 0, "uploaded": 0, "pulled": 0}  # bytes, for the figures
        self.clear()  # a killed run's leftovers

    def clear(self) -> None:
        """Remove the prefix and all under it (where it exists)."""
        try:
            self.fs.invalidate_cache(self.base)
            if self.fs.exists(self.base):
                self.fs.rm(self.base, recursive=True)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise storage_error(self.prefix, exc, "cannot clear the staging prefix") from None
        self.index.clear()

    def _relative(self, path: Path) -> str | None:
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else None

    def sync_for(self, function: Callable[..., Any], args: tuple[Any, ...]) -> Sync:
        """What the call ``function(*args)`` fetches: the staged files its arguments
        name, and what its stage function's table adds."""
        wanted: set[str] = set()
        for path in _paths(args):
            relative = self._relative(path)
            if relative is not None:
                wanted.add(relative)
        wanted.update(self._table(getattr(function, "__name__", ""), args))
        fetch = {r: self.index[r][1] for r in sorted(wanted) if r in self.index}
        return Sync(self.prefix, str(self.root), self.run, fetch)

    def _table(self, name: str, args: tuple[Any, ...]) -> Iterator[str]:
        """Per stage function, the files it reads that its arguments do not name."""
        job = args[0] if args and isinstance(args[0], Job) else None
        if job is not None and name in ("write_partition", "tally_partition", "survey_partition"):
            index = int(args[1])
            if job.cfg.dedup.method != "none":
                for suffix in _VERDICTS:
                    yield self._name(partition_file(job.dedup_dir, index, suffix))
            if name == "survey_partition":
                yield self._name(job.part_file("mix", index))
        elif job is not None and name == "_commit":  # a format's parts, or the rejects'
            kind = args[1] if args[1] is not None else "rejects"
            for index, sha in enumerate(args[3]):
                if sha is not None:
                    yield self._name(job.part_file(kind, index))
        elif name in ("bucket_range", "assemble"):  # signatures; the kept documents' ids
            folder = self._name(Path(args[0]))
            suffixes = (".sig",) if name == "bucket_range" else (".off", ".ids", ".keys")
            for relative in self.index:
                head, _, base = relative.rpartition("/")
                if head == folder and base[:6].isdigit() and base[6:] in suffixes:
                    yield relative

    def _name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def apply(self, changes: Changes) -> None:
        """A finished call's changes: into the index; what is not a part file (the
        committed dataset) is downloaded into the local staging folder."""
        self.moved["fetched"] += changes.fetched
        for relative in changes.removed:
            self.index.pop(relative, None)
            (self.root / relative).unlink(missing_ok=True)
        for relative, (size, sha) in changes.written.items():
            self.index[relative] = (int(size), str(sha))
            self.moved["uploaded"] += int(size)
            if not relative.startswith(".parts/"):
                uri = f"{self.prefix}/{relative}"
                _download(self.fs, f"{self.base}/{relative}", uri, self.root / relative, sha)
                self.moved["pulled"] += int(size)

    # the file view of the driver's own steps
    def size(self, path: Path) -> int | None:
        found = self.index.get(self._relative(path) or "")
        return None if found is None else found[0]

    def read_bytes(self, path: Path) -> bytes:
        relative = self._name(path)
        if relative not in self.index:
            raise FileNotFoundError(path)
        local = _run_folder(self.run) / "driver" / relative
        uri = f"{self.prefix}/{relative}"
        _download(self.fs, f"{self.base}/{relative}", uri, local, self.index[relative][1])
        try:
            return local.read_bytes()
        finally:
            local.unlink(missing_ok=True)

    def remove(self, path: Path) -> None:
        relative = self._relative(path)
        if relative is not None and self.index.pop(relative, None) is not None:
            _remove(self.fs, f"{self.base}/{relative}", f"{self.prefix}/{relative}")
        path.unlink(missing_ok=True)

    def close(self) -> None:
        """The prefix goes (the run is over); where the store fails, it stays (the next
        run into the same output removes it)."""
        with suppress(StorageError):
            self.clear()
        shutil.rmtree(_run_folder(self.run), ignore_errors=True)


def _paths(value: Any) -> Iterator[Path]:
    """The paths in a call's arguments (not a job's)."""
    if isinstance(value, Path):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _paths(item)
