"""Inputs of the Ray engine: local paths made absolute (workers do not share the driver's
working folder) and fsspec URIs (``s3://``, ``gs://``, ``file://``), expanded in the local
engine's order; their listing gives their sizes and ETags (:func:`qudata.io.uri.remember`),
so remote inputs are partitioned as local ones; workers read them in ranged requests."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from qudata.errors import ConfigError, InputNotFoundError, QudataError
from qudata.io.sources import InputWalk, Source, kind_of, walk_inputs
from qudata.io.uri import filesystem, is_uri, remember, remote_size, storage_error

__all__ = ["expand_sources", "input_bytes"]


def expand_sources(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    exclude: str | os.PathLike[str] | None = None,
) -> InputWalk:
    """As :func:`qudata.io.sources.walk_inputs`, with absolute paths (workers do not share
    the driver's working folder) and fsspec URIs; standard input is refused."""
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    walk = InputWalk()
    for item in inputs:
        arg = os.fspath(item)
        if arg == "-":
            raise ConfigError("--engine ray cannot read standard input: give files")
        if is_uri(arg):
            walk.sources.extend(_expand_uri(arg))
        else:
            found = walk_inputs([arg], exclude=exclude)
            walk.sources.extend(replace(s, path=os.path.abspath(s.path)) for s in found.sources)
            walk.skipped.update(found.skipped)
            walk.folders.extend(found.folders)
    return walk


def _expand_uri(uri: str) -> list[Source]:
    """A file, folder (recursively, sorted as the local walk) or glob of a filesystem URI."""
    fs, root = filesystem(uri)
    try:
        fs.invalidate_cache()  # a listing of an earlier run in this process is stale
        return _expand(uri, fs, root)
    except QudataError:
        raise
    except FileNotFoundError:
        raise InputNotFoundError(f"{uri}: no such file or folder") from None
    except Exception as exc:  # botocore, aiohttp, gcsfs: the storage failed
        raise storage_error(uri, exc, "cannot list") from None


def _source(fs: Any, path: str) -> Source | None:
    kind = kind_of(path)
    full = fs.unstrip_protocol(path)
    return None if kind is None else Source(full, kind, full)


def _expand(uri: str, fs: Any, root: str) -> list[Source]:
    def walk(folder: str) -> Iterator[Source]:
        entries = sorted(fs.ls(folder, detail=True), key=lambda e: e["name"])
        remember(fs, entries, ("ls", folder))
        for entry in entries:
            base = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry["type"] != "directory" and not base.startswith("."):
                relative = entry["name"][len(root.rstrip("/")) + 1 :]
                found = _source(fs, entry["name"])
                if found is not None:
                    yield found if found.kind != "text" else Source(found.path, "text", relative)
        for entry in entries:
            base = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry["type"] == "directory" and not base.startswith("."):
                yield from walk(entry["name"])

    if fs.isdir(root):
        found = list(walk(root))
        if not found:
            raise InputNotFoundError(
                f"{uri}: folder holds no .jsonl, .json, .parquet, .txt or .md files"
            )
        return found
    if any(c in root for c in "*?["):
        matches = fs.glob(root, detail=True)
        if not matches:
            raise InputNotFoundError(f"{uri}: no file matches this pattern")
        remember(fs, matches.values(), ("glob", root))
        out = []
        for name in sorted(matches):  # a file from its listing entry: no request of its own
            full, entry = fs.unstrip_protocol(name), matches[name]
            out += (
                _expand(full, fs, name)
                if entry["type"] == "directory"
                else _file(full, fs, name, entry)
            )
        return out
    try:
        entry = fs.info(root)
    except FileNotFoundError:
        entry = {}
    remember(fs, [entry] if entry.get("type") == "file" else [])
    return _file(uri, fs, root, entry)


def _file(uri: str, fs: Any, root: str, entry: dict[str, Any]) -> list[Source]:
    """The source of one file (its listing ``entry``), named by ``uri``."""
    if entry.get("type") != "file":
        raise InputNotFoundError(f"{uri}: no such file or folder")
    found_file = _source(fs, root)
    if found_file is None:
        raise InputNotFoundError(
            f"{uri}: unknown input type (expected .jsonl[.gz|.zst], .json, ...)"
        )
    name = root.rsplit("/", 1)[-1] if found_file.kind == "text" else uri
    return [Source(found_file.path, found_file.kind, name)]


def input_bytes(sources: list[Source]) -> int:
    """The stored size of every input."""
    return sum(
        remote_size(s.path) if is_uri(s.path) else os.path.getsize(s.path)
        for s in sources
        if s.problem is None
    )
