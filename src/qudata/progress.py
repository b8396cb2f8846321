"""The progress bar of the command line: a phase with its total, the work done, speed, ETA.

Each phase has its own unit (see :class:`qudata.executor.Progress`): bytes are
shown as sizes (``12.3/58.8 MB``, ``4.1 MB/s``), other units as counts
(``37/120 tasks``, ``12.5 tasks/s``).
"""

from __future__ import annotations

import io
import sys
from typing import Any

__all__ = ["TerminalProgress", "done_text", "speed_text"]


def _size(n: float) -> str:
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} bytes"


def done_text(completed: float, total: float | None, unit: str) -> str:
    """``12.3 MB/58.8 MB``, ``37/120 tasks``; ``?`` for an unknown total."""
    if unit == "bytes":
        return f"{_size(completed)}/{_size(total) if total else '?'}"
    shown = f"{int(total):,}" if total else "?"
    return f"{int(completed):,}/{shown} {unit}"


def speed_text(speed: float | None, unit: str) -> str:
    """``4.1 MB/s``, ``12.5 tasks/s``; empty until a speed is known."""
    if speed is None:
        return ""
    if unit == "bytes":
        return f"{_size(speed)}/s"
    return f"{speed:,.1f} {unit}/s"


class TerminalProgress:
    """A progress bar on a terminal (standard error), nothing otherwise: the phase
    (scan, dedup, mix, write, commit), the work done of its total in the phase's unit,
    speed, records per second, ETA."""

    def __init__(self, quiet: bool, *, console: Any = None) -> None:
        self.enabled = console is not None or (not quiet and sys.stderr.isatty())
        self._console = console
        self._progress: Any = None
        self._task: Any = None
        self._records = 0

    def __enter__(self) -> TerminalProgress | None:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Done(TextColumn):
            def render(self, task: Any) -> Text:
                return Text(done_text(task.completed, task.total, task.fields["unit"]))

        class Speed(TextColumn):
            def render(self, task: Any) -> Text:
                return Text(speed_text(task.speed, task.fields["unit"]))

        self._progress = Progress(
            TextColumn("{task.description:>7}"),
            BarColumn(),
            Done(""),
            Speed(""),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console or Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        return self

    def phase(self, label: str, total: int, unit: str = "bytes") -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(label, total=total or None, rate="", unit=unit)
        self._records = 0

    def advance(self, amount: int, records: int = 0) -> None:
        if self._task is None:
            return
        self._records += records
        task = self._progress.tasks[-1]
        elapsed = task.elapsed or 0.0
        rate = f"{self._records / elapsed:,.0f} rec/s" if records and elapsed > 0 else ""
        self._progress.update(self._task, advance=amount, rate=rate or task.fields["rate"])

    def snapshot(self) -> str:
        """The current line as text (for tests)."""
        from rich.console import Console

        console = Console(width=160, record=True, file=io.StringIO())
        console.print(self._progress.get_renderable())
        return console.export_text()

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
