"""Expand input arguments (files, folders, globs, ``-``) into an ordered list of sources.

The order is the order of the arguments, and inside a folder or glob the sorted
path order, so a run is deterministic and "first seen" has one meaning.

Walking a folder never opens anything. What it does not read is counted in
:attr:`InputWalk.skipped` (``hidden`` names, ``qudata_dataset`` folders: those with a
qudata ``manifest.json``, ``unsupported_type`` files, ``symlinked_folder``); the output
folder, its staging folders and its lock file are left out without being counted, so a
rerun counts the same. A device, FIFO, socket, broken link or unreadable entry becomes a
:class:`Source` with a ``problem`` (``not_a_regular_file``, ``permission_denied``,
``unreadable``), which the reader turns into a reject, never into an open.
"""

from __future__ import annotations

import glob
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from qudata.errors import InputNotFoundError
from qudata.io.output_dir import check_not_an_input, is_own_path, is_qudata_dataset

__all__ = [
    "InputWalk",
    "Source",
    "expand_inputs",
    "kind_of",
    "walk_arguments",
    "walk_inputs",
]

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
    """One input: its path (``-`` is standard input), its kind, and its display name.

    ``problem`` (a reject reason such as ``not_a_regular_file``) and ``detail`` mark an
    entry that is not read at all.
    """

    path: str
    kind: str
    name: str
    problem: str | None = None
    detail: str = ""


@dataclass(slots=True)
class InputWalk:
    """The sources found, what was skipped (by reason) and the folders walked."""

    sources: list[Source] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    folders: list[str] = field(default_factory=list)


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


_WHAT = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def _problem(path: str, name: str, exc_or_mode: OSError | int) -> Source:
    if isinstance(exc_or_mode, int):
        what = _WHAT.get(stat.S_IFMT(exc_or_mode), "not a regular file")
        return Source(path, "none", name, "not_a_regular_file", f"{what}: not read")
    if isinstance(exc_or_mode, PermissionError):
        return Source(path, "none", name, "permission_denied", "permission denied: not read")
    if isinstance(exc_or_mode, FileNotFoundError):
        return Source(path, "none", name, "not_a_regular_file", "a broken symbolic link")
    reason = exc_or_mode.strerror or str(exc_or_mode)
    return Source(path, "none", name, "unreadable", f"cannot read: {reason}")


class _Walker:
    def __init__(self, walk: InputWalk, exclude: Path | None) -> None:
        self.walk = walk
        self.exclude = exclude

    def folder(self, root: Path, folder: Path) -> None:
        try:
            with os.scandir(folder) as entries:
                ordered = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            self.walk.sources.append(_problem(str(folder), str(folder), exc))
            return
        # the output's own entries can only be in its parent, or be reached by a link
        near_output = self.exclude is not None and (
            Path(os.path.realpath(folder)) == Path(os.path.realpath(self.exclude)).parent
        )
        subfolders = []
        for entry in ordered:
            path = Path(entry.path)
            if (
                self.exclude is not None
                and (near_output or entry.is_symlink())
                and is_own_path(path, self.exclude)
            ):
                continue
            if entry.name.startswith("."):
                self.walk.skipped["hidden"] += 1
                continue
            try:
                mode = os.stat(path).st_mode  # follows a link: what would be read
                link = entry.is_symlink()
            except OSError as exc:
                self.walk.sources.append(_problem(str(path), str(path), exc))
                continue
            if stat.S_ISDIR(mode):
                if link:  # never followed: a link can make a cycle
                    self.walk.skipped["symlinked_folder"] += 1
                elif is_qudata_dataset(path):
                    self.walk.skipped["qudata_dataset"] += 1
                else:
                    subfolders.append(path)
                continue
            kind = kind_of(entry.name)
            name = path.relative_to(root).as_posix() if kind == "text" else str(path)
            if not stat.S_ISREG(mode):
                self.walk.sources.append(_problem(str(path), name, mode))
            elif kind is None:
                self.walk.skipped["unsupported_type"] += 1
            else:
                self.walk.sources.append(Source(str(path), kind, name))
        for sub in subfolders:
            self.folder(root, sub)

    def argument(self, arg: str, *, matched: bool = False) -> None:
        walk = self.walk
        if arg == "-":
            walk.sources.append(Source("-", "jsonl", "<stdin>"))
            return
        path = Path(arg)
        if matched and self.exclude is not None and is_own_path(path, self.exclude):
            return
        try:
            mode: int | None = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            walk.sources.append(_problem(arg, arg, exc))
            return
        if mode is not None and stat.S_ISDIR(mode):
            if is_qudata_dataset(path):
                if matched:
                    walk.skipped["qudata_dataset"] += 1
                    return
                raise InputNotFoundError(
                    f"{arg}: is a qudata dataset (it has qudata's manifest.json); "
                    "name the files to read instead, e.g. its jsonl/ folder"
                )
            before = len(walk.sources)
            walk.folders.append(arg)
            self.folder(path, path)
            if len(walk.sources) == before:
                raise InputNotFoundError(
                    f"{arg}: folder holds no .jsonl, .json, .parquet, .txt or .md files"
                )
        elif mode is not None:
            kind = kind_of(arg)
            if kind is None:
                raise InputNotFoundError(
                    f"{arg}: unknown input type (expected .jsonl[.gz|.zst], .json[.gz|.zst], "
                    ".parquet, .txt or .md)"
                )
            name = path.name if kind == "text" else arg
            if stat.S_ISREG(mode):
                walk.sources.append(Source(arg, kind, name))
            else:
                walk.sources.append(_problem(arg, name, mode))
        elif glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise InputNotFoundError(f"{arg}: no file matches this pattern")
            for match in matches:
                self.argument(match, matched=True)
        else:
            raise InputNotFoundError(f"{arg}: no such file or folder")


def walk_inputs(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    exclude: str | os.PathLike[str] | None = None,
) -> InputWalk:
    """Files, folders (recursively, sorted) and globs to sources, with what was skipped;
    raise :class:`~qudata.errors.InputNotFoundError` if an argument names nothing to read.

    ``exclude`` is the output folder: it, its staging folders and its lock file are never
    inputs.
    """
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    walk = InputWalk()
    walker = _Walker(walk, Path(exclude) if exclude is not None else None)
    for item in inputs:
        walker.argument(os.fspath(item))
    return walk


def expand_inputs(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    exclude: str | os.PathLike[str] | None = None,
) -> list[Source]:
    """The sources of :func:`walk_inputs`."""
    return walk_inputs(inputs, exclude=exclude).sources


def walk_arguments(
    arguments: list[str],
    output_dir: Path,
    walk: Callable[..., InputWalk] | None = None,
) -> tuple[InputWalk, dict[str, int]]:
    """Every argument walked (by ``walk``, default :func:`walk_inputs`; the Ray engine's
    also takes URIs), none overlapping the output folder (:func:`~qudata.io.output_dir.
    check_not_an_input`): the sources in order, what was skipped, and the number of the
    argument each source came from (a ``mix`` source is one argument)."""
    walker = walk or walk_inputs
    found = InputWalk()
    argument_of: dict[str, int] = {}
    for number, argument in enumerate(arguments):
        one = walker([argument], exclude=output_dir)
        check_not_an_input(output_dir, one.folders, [s.path for s in one.sources])
        found.sources.extend(one.sources)
        found.skipped.update(one.skipped)
        found.folders.extend(one.folders)
        argument_of.update((source.name, number) for source in one.sources)
    return found, argument_of
