"""Time and memory limits for the hostile cases (this project has no pytest-timeout).

``time_limit`` fails an in-process case that runs too long (SIGALRM: pytest runs tests
in the main thread); ``run_qudata`` runs the CLI in a subprocess with a wall-clock
timeout and an address-space limit, and returns the completed process.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ROOT", "run_qudata", "subprocess_env", "time_limit"]

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 4 << 30  # address space of a CLI subprocess (Python + pyarrow map about 1 GB)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail the test if the block runs longer than ``seconds``."""

    def expire(signum: int, frame: Any) -> None:
        pytest.fail(f"hostile case exceeded its time limit of {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a child Python that imports this worktree's qudata."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH"), *extra.pop("_path", "").split()])]
    )
    env.update(extra)
    return env


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_qudata(
    args: Sequence[str],
    *,
    timeout: float = 60,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m qudata ARGS`` with a time and a memory limit."""
    return subprocess.run(
        [sys.executable, "-m", "qudata", *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env or subprocess_env(),
        preexec_fn=_limit_memory,
    )
