"""Inputs of the Ray engine: local paths made absolute (workers do not share the driver's
working folder) and fsspec URIs (``s3://``, ``gs://``, ``file://``), expanded in the local
engine's order; workers read a URI through a temporary local copy
(:func:`qudata.io.uri.local_copy`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import replace

from qudata.errors import ConfigError, InputNotFoundError, MissingExtraError
from qudata.io.sources import InputWalk, Source, kind_of, walk_inputs
from qudata.io.uri import is_uri

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
    try:
        import fsspec
    except ImportError:
        raise MissingExtraError("ray", "fsspec", feature=f"Reading {uri}") from None
    fs, root = fsspec.core.url_to_fs(uri)

    def source(path: str) -> Source | None:
        kind = kind_of(path)
        full = fs.unstrip_protocol(path)
        return None if kind is None else Source(full, kind, full)

    def walk(folder: str) -> Iterator[Source]:
        entries = sorted(fs.ls(folder, detail=True), key=lambda e: e["name"])
        for entry in entries:
            base = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry["type"] != "directory" and not base.startswith("."):
                relative = entry["name"][len(root.rstrip("/")) + 1 :]
                found = source(entry["name"])
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
        matches = sorted(fs.glob(root))
        if not matches:
            raise InputNotFoundError(f"{uri}: no file matches this pattern")
        return [s for m in matches for s in _expand_uri(fs.unstrip_protocol(m))]
    if not fs.isfile(root):
        raise InputNotFoundError(f"{uri}: no such file or folder")
    found_file = source(root)
    if found_file is None:
        raise InputNotFoundError(
            f"{uri}: unknown input type (expected .jsonl[.gz|.zst], .json, ...)"
        )
    name = root.rsplit("/", 1)[-1] if found_file.kind == "text" else uri
    return [Source(found_file.path, found_file.kind, name)]


def input_bytes(sources: list[Source]) -> int:
    """The stored size of every input."""
    size = 0
    for source in sources:
        if source.problem is not None:
            continue
        if is_uri(source.path):
            import fsspec

            fs, path = fsspec.core.url_to_fs(source.path)
            size += fs.size(path)
        else:
            size += os.path.getsize(source.path)
    return size
