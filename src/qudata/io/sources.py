"""Expand input arguments (files, folders, globs, ``-``) into an ordered list of sources.

The order is the order of the arguments, and inside a folder or glob the sorted
path order, so a run is deterministic and "first seen" has one meaning.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from qudata.errors import InputError

__all__ = ["Source", "expand_inputs", "kind_of"]

_KINDS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".txt": "text",
    ".md": "text",
}
_CODECS = (".gz", ".zst")


@dataclass(frozen=True, slots=True)
class Source:
    """One input: its path (``-`` is standard input), its kind, and its display name."""

    path: str
    kind: str
    name: str


def kind_of(path: str) -> str | None:
    """The reader for ``path`` from its extension(s), or ``None`` if unknown."""
    lower = path.lower()
    for codec in _CODECS:
        if lower.endswith(codec):
            lower = lower[: -len(codec)]
            break
    kind = _KINDS.get(os.path.splitext(lower)[1])
    if kind in ("parquet", "text") and lower != path.lower():
        return None  # compressed Parquet or text files are not supported
    return kind


def _folder(root: Path) -> list[Source]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            path = Path(dirpath, filename)
            kind = kind_of(filename)
            if kind is not None and not filename.startswith("."):
                name = path.relative_to(root).as_posix() if kind == "text" else str(path)
                found.append(Source(str(path), kind, name))
    return found


def expand_inputs(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> list[Source]:
    """Files, folders (recursively, sorted) and globs to sources; raise if one matches nothing."""
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    sources: list[Source] = []
    for item in inputs:
        arg = os.fspath(item)
        if arg == "-":
            sources.append(Source("-", "jsonl", "<stdin>"))
            continue
        path = Path(arg)
        if path.is_dir():
            found = _folder(path)
            if not found:
                raise InputError(
                    f"{arg}: folder holds no .jsonl, .json, .parquet, .txt or .md files"
                )
            sources.extend(found)
        elif path.is_file():
            kind = kind_of(arg)
            if kind is None:
                raise InputError(
                    f"{arg}: unknown input type (expected .jsonl[.gz|.zst], .json[.gz|.zst], "
                    ".parquet, .txt or .md)"
                )
            sources.append(Source(arg, kind, path.name if kind == "text" else arg))
        elif glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise InputError(f"{arg}: no file matches this pattern")
            sources.extend(expand_inputs(matches))
        else:
            raise InputError(f"{arg}: no such file or folder")
    return sources
