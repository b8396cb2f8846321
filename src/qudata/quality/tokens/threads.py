"""How many threads a batch of texts gets: one per ``CHARS_PER_THREAD`` characters, no
more than the CPUs not busy with other work."""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["CHARS_PER_THREAD", "DEFAULT_THREADS", "batch_threads", "free_cpus"]

#: Most threads ``encode_ordinary_batch`` gets: one per usable CPU, at most 8.
DEFAULT_THREADS = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1)  # fmt: skip
#: Characters of a batch per thread: a thread is only worth starting for this much work.
CHARS_PER_THREAD = 1 << 18


def free_cpus() -> int:
    """Usable CPUs not busy with other work (the 1-minute load average, less this
    thread), at least 1. On a busy machine, more threads than free cores only contend;
    the load average also counts this run's own dedup workers, which is what makes it a
    better guide here than the instantaneous count of running tasks (measured: with the
    instantaneous count, a default ChatML run took 1.35x as long on 2 cores)."""
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(DEFAULT_THREADS, round(DEFAULT_THREADS - busy + 1)))


def batch_threads(texts: Sequence[str], limit: int | None = None) -> int:
    """Threads for counting ``texts``: one per ``CHARS_PER_THREAD`` characters, no more
    than the free CPUs (or ``limit``, when set)."""
    wanted = sum(map(len, texts)) // CHARS_PER_THREAD
    if wanted < 2:
        return 1
    return max(1, min(wanted, limit if limit else free_cpus()))
