"""The progress bar of the command line: a phase with its total, the work done, speed, ETA."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["TerminalProgress"]


class TerminalProgress:
    """A progress bar on a terminal (standard error), nothing otherwise: the phase
    (scan, dedup, mix, write, commit), input bytes done of the total, speed in bytes
    and records per second, ETA."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None
        self._records = 0

    def __enter__(self) -> TerminalProgress | None:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description:>7}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        return self

    def phase(self, label: str, total: int) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(label, total=total or None, rate="")
        self._records = 0

    def advance(self, amount: int, records: int = 0) -> None:
        if self._task is None:
            return
        self._records += records
        task = self._progress.tasks[-1]
        elapsed = task.elapsed or 0.0
        rate = f"{self._records / elapsed:,.0f} rec/s" if records and elapsed > 0 else ""
        self._progress.update(self._task, advance=amount, rate=rate or task.fields["rate"])

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
