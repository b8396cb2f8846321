"""Staging through object storage: Ray tasks on nodes that share no folder.

The stages (:mod:`qudata.stages`, :mod:`qudata.dedup`) read and write files in the run's
staging folder. On a cluster whose nodes share no file system (Kubernetes Ray), the
staging lives under an object-storage prefix instead (``storage.staging: s3://...``, or
beside an ``-o s3://`` output when the staging folder is not shared), and every Ray task
works in a scratch folder of its node:

1. before the call, the task fetches from the prefix only the files that this call
   reads (:meth:`Mirror.sync_for`: the files its arguments name, and per stage function
   a table, e.g. map 2 its partition's dedup verdicts, a format's commit that format's
   parts; a dedup step's data-dependent reads on first use, :mod:`qudata.io.on_demand`),
   each verified against the sha256 its writer computed; a node keeps what it
   fetched (by sha256) for the run, so a file is fetched at most once per node;
2. the call runs with the driver's staging path replaced by the scratch folder;
3. after it, the task uploads every file the call wrote or changed (with its size and
   sha256); the driver adds these to its index of the prefix, deletes there what the
   call deleted, and downloads (verified) what is not a part file: the
   committed shards and the rejects, which it publishes as from a local staging.

The driver's own steps over the staging (the dedup step's sizes, ``meta.json`` files and
removals, the commit's progress total) use the same index (:class:`Mirror` is their
file view). Nothing read back is unpickled. A storage failure in a task is a
:class:`~qudata.errors.StorageError` naming the URI (Ray runs the task again). When the
executor closes, every node's scratch goes, and the prefix too unless the run failed
for a storage or a worker (:attr:`Mirror.keep`): ``--resume`` then rebuilds the index
from the killed run's records (each names its files with their xxh3-128 digest,
:func:`qudata.stages.resume.file_digest`, which the fetch checks) and fetches a
record and its files for the stage that takes it.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import orjson

from qudata.dedup.files import partition_file
from qudata.errors import StorageError
from qudata.io.uri import filesystem, storage_error
from qudata.plan.job import Job

from .ray_scratch import Changes, Sync, download, remove, run_folder

__all__ = ["Mirror", "staging_prefix"]

_VERDICTS = (".pos", ".keys", ".verdicts.npz")
_STAGES = {"scan_partition": "scan", "write_partition": "write"}  # what --resume takes


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


class Mirror:
    """The driver's side: the index of the prefix (path under the staging -> size and
    sha256), the files each call fetches, and the file view of the driver's own steps
    (``size``, ``read_bytes``, ``remove``: as :class:`qudata.executor.LocalFiles`)."""

    def __init__(self, prefix: str, root: Path, *, resume: bool = False) -> None:
        self.prefix = prefix.rstrip("/")
        self.root = root
        self.run = uuid.uuid4().hex[:16]
        self.fs, base = filesystem(self.prefix)
        self.base = base.rstrip("/")
        self.index: dict[str, tuple[int, str]] = {}
        self.small: dict[str, bytes] = {}  # small files' bytes, as their tasks sent them
        self.records: dict[str, list[str]] = {}  # a killed run's records: the files named
        self.moved = {"fetched": 0, "uploaded": 0, "pulled": 0}  # bytes, for the figures
        self.keep = False  # on close: keep the prefix (a failed run, for --resume)
        if resume:
            self._recover()
        else:
            self.clear()  # a killed run's leftovers

    def _recover(self) -> None:
        """``--resume``: the index of what a killed run left, from its records (their
        first line is the sha256 of the rest, which names each file's digest); a file
        no record names is not taken."""
        done = f"{self.base}/.parts/done/"
        try:
            self.fs.invalidate_cache(self.base)
            found = self.fs.find(self.base, detail=True) if self.fs.exists(self.base) else {}
            sizes = {k[len(self.base) + 1 :]: int(v.get("size") or 0) for k, v in found.items()}
            keys = [k for k in found if k.startswith(done) and k.endswith(".json")]
            bodies = self.fs.cat(keys) if keys else {}
        except Exception as exc:
            raise storage_error(self.prefix, exc, "cannot read the staging prefix") from None
        for key, data in sorted(bodies.items()):
            head, _, body = data.partition(b"\n")
            if head != hashlib.sha256(body).hexdigest().encode("ascii"):
                continue
            try:
                named = {str(k): str(v) for k, v in orjson.loads(body)["files"].items()}
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                continue
            relative = key[len(self.base) + 1 :]
            self.index[relative] = (len(data), hashlib.sha256(data).hexdigest())
            self.records[relative] = []
            for name, sha in named.items():
                path = f".parts/{name}"
                if path in sizes and ".." not in name.split("/"):
                    self.index[path] = (sizes[path], sha)
                    self.records[relative].append(path)

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
        self.small.clear()

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
        optional: set[str] = set()
        job = args[0] if args and isinstance(args[0], Job) else None
        stage = _STAGES.get(getattr(function, "__name__", ""))
        if job is not None and job.resume and stage is not None:  # the killed run's record
            record = f".parts/done/{stage}-{int(args[1]):06d}.json"
            optional.update([record, *self.records.get(record, [])])
            wanted.update(optional)
        fetch = {r: self.index[r][1] for r in sorted(wanted) if r in self.index}
        lazy = self._on_demand(getattr(function, "__name__", ""), args)
        return Sync(self.prefix, str(self.root), self.run, fetch, frozenset(optional), lazy)

    def _table(self, name: str, args: tuple[Any, ...]) -> Iterator[str]:
        """Per stage function, the files it reads that its arguments do not name."""
        job = args[0] if args and isinstance(args[0], Job) else None
        if job is not None and name in ("write_partition", "tally_partition", "survey_partition"):
            index = int(args[1])
            if job.cfg.dedup.method != "none":
                for suffix in _VERDICTS:
                    yield self._name(partition_file(job.dedup_dir, index, suffix))
            if name == "write_partition":  # the checks' verdicts of map 1 (if any)
                yield self._name(job.part_file("checks", index))
            if name == "survey_partition":
                yield self._name(job.part_file("mix", index))
        elif job is not None and name == "_commit":  # a format's parts, or the rejects'
            kind = args[1] if args[1] is not None else "rejects"
            for index, sha in enumerate(args[3]):
                if sha is not None:
                    yield self._name(job.part_file(kind, index))

    def _on_demand(self, name: str, args: tuple[Any, ...]) -> dict[str, str]:
        """The files a dedup step reads only where its data names them (the signatures
        of a candidate pair's partitions, the ids of the kept documents): fetched on
        first use (:mod:`qudata.io.on_demand`)."""
        if name not in ("bucket_range", "assemble"):
            return {}
        folder = self._name(Path(args[0]))
        suffixes = (".sig",) if name == "bucket_range" else (".off", ".ids", ".keys")
        lazy = {}
        for relative, (_, sha) in self.index.items():
            head, _, base = relative.rpartition("/")
            if head == folder and base[:6].isdigit() and base[6:] in suffixes:
                lazy[relative] = sha
        return lazy

    def _name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def apply(self, changes: Changes) -> None:
        """A finished call's changes: into the index; what is not a part file (the
        committed dataset) is downloaded into the local staging folder."""
        self.moved["fetched"] += changes.fetched
        for relative in changes.removed:
            self.index.pop(relative, None)
            self.small.pop(relative, None)
            (self.root / relative).unlink(missing_ok=True)
        if changes.removed:
            try:
                self.fs.rm([f"{self.base}/{r}" for r in changes.removed])
            except FileNotFoundError:
                pass
            except Exception as exc:
                raise storage_error(self.prefix, exc, "cannot delete staged files") from None
        for relative, (size, sha) in changes.written.items():
            self.index[relative] = (int(size), str(sha))
            self.moved["uploaded"] += int(size)
            body = changes.small.get(relative)
            if body is not None and hashlib.sha256(body).hexdigest() == sha:
                self.small[relative] = body
            if not relative.startswith(".parts/"):
                uri = f"{self.prefix}/{relative}"
                download(self.fs, f"{self.base}/{relative}", uri, self.root / relative, sha)
                self.moved["pulled"] += int(size)

    # the file view of the driver's own steps
    def size(self, path: Path) -> int | None:
        found = self.index.get(self._relative(path) or "")
        return None if found is None else found[0]

    def read_bytes(self, path: Path) -> bytes:
        relative = self._name(path)
        if relative not in self.index:
            raise FileNotFoundError(path)
        if relative in self.small:
            return self.small[relative]
        local = run_folder(self.run) / "driver" / relative
        uri = f"{self.prefix}/{relative}"
        download(self.fs, f"{self.base}/{relative}", uri, local, self.index[relative][1])
        try:
            return local.read_bytes()
        finally:
            local.unlink(missing_ok=True)

    def remove(self, path: Path) -> None:
        relative = self._relative(path)
        self.small.pop(relative or "", None)
        if relative is not None and self.index.pop(relative, None) is not None:
            remove(self.fs, f"{self.base}/{relative}", f"{self.prefix}/{relative}")
        path.unlink(missing_ok=True)

    def committed(self) -> dict[str, tuple[str, str]]:
        """The committed files (not parts) by path under the staging: their path on
        the store and their sha256 (for the publication to copy them there)."""
        return {
            relative: (f"{self.base}/{relative}", sha)
            for relative, (_, sha) in self.index.items()
            if not relative.startswith(".parts/")
        }

    def release(self) -> None:
        """The prefix goes now (kept past :meth:`close` for the publication)."""
        self.keep = False
        self.close()

    def close(self) -> None:
        """The prefix goes (the run is over), unless :attr:`keep` (for ``--resume``);
        where the store fails, it stays (the next run into the same output removes it)."""
        if not self.keep:
            with suppress(StorageError):
                self.clear()
        shutil.rmtree(run_folder(self.run), ignore_errors=True)


def _paths(value: Any) -> Iterator[Path]:
    """The paths in a call's arguments (not a job's)."""
    if isinstance(value, Path):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _paths(item)
