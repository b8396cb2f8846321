"""The output folder: what may be written or replaced, one run at a time, and publishing.

Nothing that is not ours is ever replaced or deleted:

- ``-o`` must not be, contain, or lie inside an input (:func:`check_not_an_input`);
- ``--overwrite`` replaces only a qudata dataset (a ``manifest.json`` holding
  ``qudata_version``) or an empty folder (:func:`check_output_dir`);
- one run at a time writes into an output folder: :class:`OutputLock` holds
  ``fcntl.flock`` on ``.<name>.qudata.lock`` in the parent folder;
- a run killed between its two final renames left the previous dataset as
  ``.<name>.qudata-old-<pid>``: :func:`recover` puts it back (under the lock, before the
  folder is checked) and removes dead runs' staging folders ``.<name>.qudata-partial-<pid>``.

Example::

    with OutputLock(out):
        recover(out)
        check_output_dir(out, overwrite=False)
        staging = make_staging(out)
        ...  # write into staging
        publish(staging, out)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import orjson

from qudata.errors import OutputError, WriteError

__all__ = [
    "OutputLock",
    "check_not_an_input",
    "check_output_dir",
    "is_own_path",
    "is_qudata_dataset",
    "make_staging",
    "publish",
    "recover",
]

_MANIFEST_HEAD = 4096  # our manifest.json names qudata_version in its first line
_MANIFEST_PARSE = 256 * 10**6


def is_qudata_dataset(folder: str | os.PathLike[str]) -> bool:
    """``folder`` holds a ``manifest.json`` written by qudata: a regular file holding a JSON
    object with ``qudata_version`` (text) and ``counts`` (an object).

    Never blocks (a FIFO named ``manifest.json`` is not opened for reading) and reads a
    foreign ``manifest.json`` no further than its first 4 KB.
    """
    try:
        fd = os.open(Path(folder, "manifest.json"), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return False
        head = stream.read(_MANIFEST_HEAD)
        if not (head.lstrip().startswith(b"{") and b'"qudata_version"' in head):
            return False
        if info.st_size > _MANIFEST_PARSE:
            return True  # too big to parse here; its first line says it is ours
        try:
            data = orjson.loads(head + stream.read())
        except (orjson.JSONDecodeError, OSError):
            return False
    return (
        isinstance(data, dict)
        and isinstance(data.get("qudata_version"), str)
        and isinstance(data.get("counts"), dict)
    )


def is_own_path(path: str | os.PathLike[str], output_dir: Path) -> bool:
    """``path`` is the output folder, one of its staging folders or its lock file."""
    here = Path(os.path.realpath(path))
    out = Path(os.path.realpath(output_dir))
    if here == out:
        return True
    return here.parent == out.parent and here.name.startswith(f".{out.name}.qudata")


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(path))


def check_not_an_input(
    output_dir: Path, arguments: Iterable[str], input_paths: Iterable[str]
) -> None:
    """Refuse an output folder that is, contains or lies inside an input (symlinks resolved).

    ``arguments`` are the files and folders as given (globs and ``-`` are ignored here);
    ``input_paths`` are the files found in them.
    """
    out = _resolved(output_dir)
    for given in (*arguments, *input_paths):
        if given == "-" or "://" in given:
            continue
        path = _resolved(given)
        if path == out:
            what = "is an input"
        elif out in path.parents:
            what = "contains an input"
        elif path in out.parents:
            what = "lies inside an input folder" if path.is_dir() else "lies under an input file"
        else:
            continue
        raise OutputError(
            f"{output_dir}: the output folder {what} ({given}); "
            "write the dataset to a folder outside the inputs"
        )


def check_output_dir(output_dir: Path, *, overwrite: bool) -> None:
    """The output folder may be written: missing, empty, or (with ``overwrite``) a qudata
    dataset; never a file, never a folder holding the current folder or foreign files."""
    out = output_dir
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise OutputError(
            f"{out}: the output folder would contain the current folder; name a new folder"
        )
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if not out.is_dir():
        return
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        raise OutputError(f"{out}: cannot list the folder: {exc.strerror or exc}") from None
    if empty:
        return
    if not overwrite:
        raise OutputError(f"{out}: folder is not empty (use --overwrite to replace it)")
    if not is_qudata_dataset(out):
        raise OutputError(
            f"{out}: --overwrite replaces only a qudata dataset (a folder with qudata's "
            "manifest.json) or an empty folder, and this folder is neither; "
            "remove it yourself or choose another output folder"
        )


class OutputLock:
    """An exclusive ``fcntl.flock`` on ``.<name>.qudata.lock`` beside the output folder.

    A second run into the same folder fails at once, naming the pid written in the lock
    file. The kernel releases a lock when its process dies, so a lock file left by a
    killed run is simply taken over. The file is removed when the lock is released.
    """

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.path = output_dir.parent / f".{output_dir.name}.qudata.lock"
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        parent = self.output_dir.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WriteError(
                f"{self.output_dir}: cannot create its parent folder: {exc.strerror or exc}"
            ) from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:  # read-only, permission denied, a name too long
                raise WriteError(
                    f"{self.output_dir}: cannot create the lock file {self.path.name} in "
                    f"{parent}: {exc.strerror or exc}"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise OutputError(
                    f"{self.output_dir}: another qudata run (pid {other}) is writing this "
                    f"output folder (lock {self.path}); wait for it to finish"
                ) from None
            # the holder before us may have removed the file between our open and flock:
            # then we hold a lock on a file nobody else can see, so start again
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # while still holding the lock
            os.close(self._fd)
            self._fd = None


def _leftovers(output_dir: Path, kind: str) -> list[Path]:
    parent = output_dir.parent
    if not parent.is_dir():
        return []
    return sorted(parent.glob(f".{output_dir.name}.qudata-{kind}-*"))


def recover(output_dir: Path, *, keep: bool = False) -> Path | None:
    """Undo what killed runs left behind (call it holding :class:`OutputLock`, so no other
    run into this folder is alive): a previous dataset left as ``-old-`` is put back when
    the output folder is missing, and staging folders are removed. With ``keep``
    (``--resume``) the newest staging folder is kept and returned (the others go)."""
    for old in _leftovers(output_dir, "old"):
        if not output_dir.exists():
            os.replace(old, output_dir)
        else:
            shutil.rmtree(old, ignore_errors=True)
    partials = sorted(_leftovers(output_dir, "partial"), key=lambda p: p.stat().st_mtime_ns)
    kept = partials.pop() if keep and partials else None
    for partial in partials:
        shutil.rmtree(partial, ignore_errors=True)
    return kept


def make_staging(output_dir: Path, previous: Path | None = None) -> Path:
    """A new empty hidden staging folder beside ``output_dir``, for this process; or,
    to resume, ``previous`` (a killed run's) renamed to be this process's."""
    staging = output_dir.parent / f".{output_dir.name}.qudata-partial-{os.getpid()}"
    if previous is not None and previous != staging:
        shutil.rmtree(staging, ignore_errors=True)
        os.replace(previous, staging)
        return staging
    if previous is not None:
        return staging
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise WriteError(
            f"{output_dir}: cannot create the staging folder {staging.name}: {exc.strerror or exc}"
        ) from None
    return staging


def publish(staging: Path, output_dir: Path, mark: Callable[[], None] | None = None) -> None:
    """Move the complete ``staging`` folder to ``output_dir``: two renames, the previous
    dataset first out of the way as ``-old-`` (put back if the second rename fails).

    SIGINT and SIGTERM are held during the renames and ``mark()`` (called once the
    dataset is in place), so an interrupt comes either before them (nothing was
    published) or after ``mark`` (the dataset is complete and in place)."""
    old = None
    with held_signals():
        if output_dir.exists():
            old = output_dir.with_name(f".{output_dir.name}.qudata-old-{os.getpid()}")
            os.replace(output_dir, old)
        try:
            os.replace(staging, output_dir)
        except BaseException:
            if old is not None:  # put the previous complete dataset back
                os.replace(old, output_dir)
            raise
        if mark is not None:
            mark()
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def held_signals() -> Iterator[None]:
    """SIGINT and SIGTERM wait (in the main thread) until the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
