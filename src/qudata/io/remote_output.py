"""A dataset written to object storage (``-o s3://bucket/out``, ``gs://``, ``file://``).

Object stores have no rename, so the commit is an upload with ``manifest.json`` last:

1. the run stages the dataset in a local folder (``storage.staging``, default the
   system's temporary folder; on a Ray cluster one every node mounts), exactly as for a
   local ``-o``, and the publish gate verifies it there;
2. the previous dataset's ``manifest.json`` is deleted (``--overwrite``): from here on
   the prefix is not a dataset;
3. every other file is uploaded to its final key (or copied there on the store, when a
   Ray run staged it on the same file system), and read back: its size and sha256
   must be those of the staged file (a read-back, not the store's ETag, which is an MD5
   only for single-part uploads and not on every store);
4. the previous dataset's keys that the new one does not have are deleted;
5. ``manifest.json`` is uploaded last, and read back: the commit marker. A prefix
   without it is not a dataset; readers look for it first.

A failure in 2-5 (the store unreachable, access denied) is one line naming the URI;
what was uploaded, and a previous dataset whose manifest was already gone, is deleted
where the store allows it, so the prefix holds no manifest and a new run may write it.

Example::

    target = RemoteOutput("s3://bucket/out")
    target.check(overwrite=False)
    ...  # stage into a local folder beside target.shadow, then the gate
    target.publish(staging)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson

from qudata.errors import OutputError, QudataError, WriteError
from qudata.io.hashing import file_hexdigest
from qudata.io.output_dir import check_not_an_input, held_signals
from qudata.io.uri import filesystem, storage_error
from qudata.pause import pause_at

__all__ = ["RemoteOutput"]

_MANIFEST = "manifest.json"
_BLOCK = 8 << 20
_MANIFEST_PARSE = 256 * 10**6


class RemoteOutput:
    """The dataset prefix ``uri`` on an fsspec file system, and the local folder
    (:attr:`shadow`) whose staging folders, lock and leftovers stand for it."""

    def __init__(self, uri: str, staging_root: str | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.fs, path = filesystem(self.uri)
        self.path = path.rstrip("/")
        protocols = self.fs.protocol
        self._local = "file" in (protocols if isinstance(protocols, tuple) else (protocols,))
        if staging_root is not None and "://" in staging_root:  # staged on object storage
            staging_root = None
        root = Path(staging_root or tempfile.gettempdir()).absolute()
        digest = hashlib.sha256(self.uri.encode("utf-8")).hexdigest()[:16]
        #: never created: its parent holds the lock and the staging folders of runs into uri
        self.shadow = root / f"qudata-{digest}" / "out"
        #: staged files already on this file system (a Ray run's staging on the store):
        #: relative path -> (its path there, its sha256); copied there, not uploaded
        self.copies: dict[str, tuple[str, str]] = {}

    def _key(self, relative: str) -> str:
        return f"{self.path}/{relative}"

    def _listing(self) -> list[str]:
        """The keys under the prefix (fresh from the store, not a cached listing)."""
        try:
            self.fs.invalidate_cache(self.path)
            if self.fs.isfile(self.path):
                raise OutputError(f"{self.uri}: exists and is an object, not a folder (prefix)")
            return sorted(str(k) for k in self.fs.find(self.path + "/", withdirs=False))
        except QudataError:
            raise
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise storage_error(self.uri, exc, "cannot list") from None

    def check_inputs(self, arguments: Iterable[str]) -> None:
        """Refuse an input that is or lies under the output prefix (or, for ``file://``,
        a local input path that is, holds or lies under its folder)."""
        arguments = list(arguments)
        if self._local:
            check_not_an_input(Path(self.path), arguments, [])
        for given in arguments:
            if given.rstrip("/") == self.uri or given.startswith(self.uri + "/"):
                raise OutputError(
                    f"{self.uri}: the output prefix is or contains an input ({given}); "
                    "write the dataset to a prefix outside the inputs"
                )

    def check(self, *, overwrite: bool) -> list[str]:
        """The prefix may be written: empty, or (with ``overwrite``) a qudata dataset;
        returns the keys it holds."""
        keys = self._listing()
        if not keys:
            return keys
        if not overwrite:
            raise OutputError(f"{self.uri}: prefix is not empty (use --overwrite to replace it)")
        if not self._is_dataset():
            raise OutputError(
                f"{self.uri}: --overwrite replaces only a qudata dataset (a prefix with "
                "qudata's manifest.json) or an empty prefix, and this prefix is neither; "
                "remove it yourself or choose another output prefix"
            )
        return keys

    def _is_dataset(self) -> bool:
        key = self._key(_MANIFEST)
        try:
            if not self.fs.isfile(key) or self.fs.size(key) > _MANIFEST_PARSE:
                return False
            data = orjson.loads(self.fs.cat_file(key))
        except orjson.JSONDecodeError:
            return False
        except Exception as exc:
            raise storage_error(self.uri, exc, "cannot read manifest.json") from None
        return (
            isinstance(data, dict)
            and isinstance(data.get("qudata_version"), str)
            and isinstance(data.get("counts"), dict)
        )

    def publish(
        self, staging: Path, *, overwrite: bool, mark: Callable[[], None] | None = None
    ) -> None:
        """Upload the verified ``staging`` folder to the prefix, ``manifest.json`` last
        (see the module's steps); ``mark()`` once it is committed."""
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        if _MANIFEST not in files:
            raise WriteError(f"{self.uri}: the staged dataset has no manifest.json")
        files.remove(_MANIFEST)
        written: list[str] = []
        replaced: list[str] = []  # the previous dataset, once its manifest is gone
        try:
            previous = self.check(overwrite=overwrite)  # again: it may have changed
            if previous:
                self.fs.rm_file(self._key(_MANIFEST))  # from here the old one is no dataset
                replaced = previous
            for relative in files:
                written.append(self._key(relative))
                self._upload(staging / relative, self._key(relative))
                pause_at("uploaded")
            for gone in sorted(set(replaced) - set(written) - {self._key(_MANIFEST)}):
                self.fs.rm_file(gone)
                self._prune(gone)
            with held_signals():  # the commit marker, and saying so, are one step
                written.append(self._key(_MANIFEST))
                self._upload(staging / _MANIFEST, self._key(_MANIFEST))
                if mark is not None:
                    mark()
        except BaseException as exc:
            left = self._remove([*written, *replaced])
            if not isinstance(exc, Exception):
                raise
            if isinstance(exc, QudataError):
                cause = _strip(str(exc), self.uri)
            else:
                cause = str(storage_error(self.uri, exc, "cannot upload the dataset"))
            where = "the partial upload was removed" if not left else (
                f"{left} objects could not be removed: delete {self.uri} yourself"
            )  # fmt: skip
            raise WriteError(f"{cause}; nothing was published ({where})") from None
        finally:
            self.fs.invalidate_cache(self.path)

    def _upload(self, local: Path, key: str) -> None:
        """``local`` to ``key`` (or a copy of the same bytes already on the store, made
        there), then read back: the same size and sha256."""
        if self._local:  # a file:// prefix: its folders first (a store has none)
            self.fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
        source = self.copies.get(key[len(self.path) + 1 :])
        if source is not None and source[1] == file_hexdigest(local, hashlib.sha256()):
            self.fs.copy(source[0], key)  # server-side: no bytes through this machine
        else:
            self.fs.put_file(str(local), key)
        self.fs.invalidate_cache(key)
        size = os.path.getsize(local)
        stored = self.fs.size(key)
        name = f"{self.uri}{key[len(self.path) :]}"
        if stored != size:
            raise WriteError(f"{name}: {stored:,} bytes stored, {size:,} uploaded")
        if file_hexdigest(local, hashlib.sha256()) != self._sha256(key):
            raise WriteError(f"{name}: the stored bytes differ from the uploaded ones (sha256)")

    def _sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(key, "rb", block_size=_BLOCK) as stream:
            while block := stream.read(_BLOCK):
                digest.update(block)
        return digest.hexdigest()

    def _prune(self, key: str) -> None:
        """A ``file://`` prefix: the folders ``key``'s removal left empty go too (a store
        has no folders)."""
        folder = os.path.dirname(key)
        while self._local and len(folder) > len(self.path):
            try:
                os.rmdir(folder)
            except OSError:
                return
            folder = os.path.dirname(folder)

    def _remove(self, keys: list[str]) -> int:
        """Delete ``keys`` where possible; the number that could not be deleted."""
        left = 0
        for key in dict.fromkeys(keys):
            try:
                self.fs.rm_file(key)
                self._prune(key)
            except FileNotFoundError:
                pass
            except Exception:
                left += 1
        return left


def _strip(message: str, uri: str) -> str:
    """``message`` starting with ``uri`` (named once)."""
    return message if message.startswith(uri) else f"{uri}: {message}"
