"""The publish gate: what will be published is read back and reconciled with the account.

Between the commit and the final rename, :func:`verify_dataset` reads every file the
manifest lists and checks that it exists, has its sha256 and byte count, and holds the
records it is said to hold (tokens too where the file itself says how many: Megatron's
``.idx``; :mod:`qudata.export.readback`); that the files of each format add up to the
documents and records the run's account gives the format; that the account balances
(``read == accepted + dropped``, per format ``accepted == documents + dropped``, the
inputs' records add up to ``read``, and their entries are well formed:
:func:`qudata.export.inputs.input_problem`); that ``rejects.jsonl`` holds one line per
drop; and that no format folder holds a file the manifest does not list. Any difference
raises :class:`~qudata.errors.IntegrityError` naming the file and what differs, and
nothing is published. :func:`differences` gives every difference (a :class:`Mismatch`:
the file and what differs): ``qudata validate OUT_DIR`` checks a published dataset with
it.

The files are read back side by side, one thread per usable CPU up to
:data:`MAX_THREADS` (each file's sha256 on a thread of its own beside its count); the
differences come in the same order whatever finishes first.

Example::

    verify_dataset(LocalFileSystem(), "out/.out.qudata-partial-12", manifest)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import orjson

from qudata.engines.local import usable_cpus
from qudata.errors import IntegrityError
from qudata.export.inputs import input_problem
from qudata.export.readback import (
    FileSystem,
    LocalFileSystem,
    Mismatch,
    check_file,
    count_lines,
    fail,
)

__all__ = [
    "MAX_THREADS",
    "FileSystem",
    "LocalFileSystem",
    "Mismatch",
    "differences",
    "manifest_of",
    "verify_dataset",
]

_NOT_DATA = {"README.md"}  # a format folder's own files, not in its file list
#: Most files read back at once (each holds up to 12 MB of chunks read, queued and hashed).
MAX_THREADS = 8


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
        yield fail("manifest.json", problem)
    config = manifest.get("config", {}).get("pack", {})
    files = [
        (name, entry) for name, stats in manifest["formats"].items() for entry in stats["files"]
    ]
    threads = max(1, min(len(files), usable_cpus(), MAX_THREADS))
    with ThreadPoolExecutor(threads, thread_name_prefix="qudata-gate") as pool:
        checks = iter(
            [
                pool.submit(_found, check_file, fs, root, name, entry, config.get(name) or {})
                for name, entry in files
            ]
        )
        try:
            yield from _reconcile(fs, root, manifest, checks)
        finally:  # the gate stopped at a difference: the files not yet read are not
            pool.shutdown(wait=True, cancel_futures=True)
    yield from _caught(_check_rejects, fs, root, manifest)


def _reconcile(
    fs: FileSystem, root: str, manifest: dict[str, Any], checks: Iterator[Future[Mismatch | None]]
) -> Iterator[Mismatch]:
    """Each format's files (``checks``: their checks, in the manifest's order), its
    totals, and its folder."""
    for name, stats in manifest["formats"].items():
        listed = set()
        for entry in stats["files"]:
            listed.add(entry["path"])
            found = next(checks).result()
            if found is not None:
                yield found
        yield from _caught(_check_format, name, stats)
        folder = f"{root}/{name}"
        if stats["files"] and not fs.isdir(folder):
            yield fail(f"{name}/", f"the {name} folder is missing")
        if fs.isdir(folder):
            for path in fs.ls(folder):
                base = path.rsplit("/", 1)[-1]
                if f"{name}/{base}" not in listed and base not in _NOT_DATA:
                    yield fail(f"{name}/{base}", "a file the manifest does not list")


def _caught(check: Callable[..., None], *args: Any) -> Iterator[Mismatch]:
    found = _found(check, *args)
    if found is not None:
        yield found


def _found(check: Callable[..., None], *args: Any) -> Mismatch | None:
    """The difference ``check`` raises, or None."""
    try:
        check(*args)
    except Mismatch as found:
        return found
    return None


def _balance(manifest: dict[str, Any]) -> None:
    counts = manifest["counts"]
    read, accepted = counts["read"], counts["accepted"]
    dropped = sum(counts["dropped"].values())
    if read != accepted + dropped:
        raise fail("manifest.json", f"read {read:,} != accepted {accepted:,} + dropped {dropped:,}")
    inputs = sum(entry["records"] for entry in manifest["inputs"])
    if inputs != read:
        raise fail("manifest.json", f"the inputs' records add up to {inputs:,}, not read {read:,}")
    for name, stats in manifest["formats"].items():
        lost = sum(stats["dropped"].values())
        if accepted != stats["documents"] + lost:
            raise fail(
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
        raise fail(name, f"its files hold {counted:,} tokens, the account {tokens:,}")
    if any(f.get("packing") is not None for f in files):
        return
    documents = sum(f["documents"] for f in files)
    if documents != stats["documents"]:
        raise fail(
            name, f"its files hold {documents:,} documents, the account {stats['documents']:,}"
        )
    records = sum(f["records"] for f in files)
    if records != stats["records"]:
        raise fail(name, f"its files hold {records:,} records, the account {stats['records']:,}")


def _check_rejects(fs: FileSystem, root: str, manifest: dict[str, Any]) -> None:
    """``rejects.jsonl``: one line per record dropped, before or by a format."""
    path = f"{root}/rejects.jsonl"
    if not fs.isfile(path):
        raise fail("rejects.jsonl", "missing")
    expected = sum(manifest["counts"]["dropped"].values()) + sum(
        sum(stats["dropped"].values()) for stats in manifest["formats"].values()
    )
    with fs.open(path, "rb") as stream:
        found = count_lines(stream)
    if found != expected:
        raise fail("rejects.jsonl", f"holds {found:,} rejects, the account {expected:,}")


def manifest_of(fs: FileSystem, root: str) -> dict[str, Any]:
    """The ``manifest.json`` under ``root``, as read back."""
    with fs.open(f"{root}/manifest.json", "rb") as stream:
        data: dict[str, Any] = orjson.loads(stream.read())
    return data
