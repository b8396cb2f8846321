"""What the driver and the global steps need of an executor and of a progress display.

The protocols sit below :mod:`qudata.driver` (which drives the stages), the pipeline
and the engines: the engines implement :class:`Executor`, the command line's progress
bar :class:`Progress` (the dedup step uses both too). Nothing here imports qudata, so
any module may import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Executor", "LocalFiles", "Progress", "Quiet", "StagingFiles"]


class Executor(Protocol):
    """Runs stage calls; results in call order, ``on_done(i, result)`` as call ``i``
    ends (in any order)."""

    name: str
    workers: int

    def map(
        self,
        function: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        on_done: Callable[[int, Any], None] | None = None,
        consume: Callable[[Any], None] | None = None,
    ) -> list[Any]: ...

    def close(self) -> None: ...


class StagingFiles(Protocol):
    """How the driver's own steps see the staging folder's files: the local folder
    (:class:`LocalFiles`), or on a cluster that shares no folder, the object-storage
    prefix the tasks keep it under (:class:`qudata.engines.ray_staging.Mirror`)."""

    def size(self, path: Path) -> int | None: ...  # None: no such file
    def read_bytes(self, path: Path) -> bytes: ...
    def remove(self, path: Path) -> None: ...


class LocalFiles:
    """The staging folder's files where this process sees them."""

    def size(self, path: Path) -> int | None:
        return path.stat().st_size if path.is_file() else None

    def read_bytes(self, path: Path) -> bytes:
        return path.read_bytes()

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)


class Progress(Protocol):
    """Where the driver reports progress: a phase with its total and its unit, then work
    done (in that unit) and the records it read. Phases: ``scan`` and ``write`` in input
    bytes, ``dedup`` in tasks, ``mix`` in partitions, ``commit`` in bytes of the parts
    made into shards (and rejects)."""

    def phase(self, label: str, total: int, unit: str = "bytes") -> None: ...
    def advance(self, amount: int, records: int = 0) -> None: ...


class Quiet:
    """A :class:`Progress` that shows nothing."""

    def phase(self, label: str, total: int, unit: str = "bytes") -> None:
        pass

    def advance(self, amount: int, records: int = 0) -> None:
        pass
