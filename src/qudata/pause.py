"""A test hook: the run pauses at a named point, so a test can signal it there.

With ``QUDATA_PAUSE_AT=<point>`` (``scan``, ``dedup``, ``write``, ``commit``, ``gate``,
``publish``, ``published``) the process that reaches the point first creates the file
named by ``QUDATA_PAUSE_FILE`` and sleeps (at most 60 seconds) until a signal ends
it. Without the variable :func:`pause_at` does nothing. ``scan``, ``write`` and
``commit`` pause in the stage of partition 0 (a worker process); the others in the
run's own process. ``uploaded``: an object-storage output (``-o s3://...``) after its
first file is uploaded (not in :data:`POINTS`: a local ``-o`` never reaches it).
"""

from __future__ import annotations

import os
import time

__all__ = ["POINTS", "pause_at"]

POINTS = ("scan", "dedup", "write", "commit", "gate", "publish", "published")


def pause_at(point: str) -> None:
    """Pause here if the environment asks for ``point``."""
    if os.environ.get("QUDATA_PAUSE_AT") != point:
        return
    marker = os.environ.get("QUDATA_PAUSE_FILE")
    if marker:
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return  # another process paused here first
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
