"""Hostile inputs: helpers to run qudata under a time limit (and a memory cap, or as
another user) and to read what a run left behind.

Every test here has a time limit: in-process tests get a ``SIGALRM`` after
``TIME_LIMIT`` seconds (autouse fixture), and subprocesses a ``timeout``.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from qudata.cli import cli

SRC = Path(__file__).resolve().parents[2] / "src"
TIME_LIMIT = 30
#: A configuration that needs no tokenizer.
FAST = {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}
FAST_ARGS = ["--tokenizer", "none", "-q"]


PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


class TimeLimitExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def time_limit() -> Iterator[None]:
    """Fail a test that runs longer than TIME_LIMIT seconds (a hang is a failure)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeLimitExceeded(f"over {TIME_LIMIT} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TIME_LIMIT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def qudata_cli(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> Result:
    """``qudata ARGS`` in-process (click's runner), from ``cwd``."""
    with pytest.MonkeyPatch.context() as mp:
        if cwd is not None:
            mp.chdir(cwd)
        return CliRunner().invoke(cli, list(args), input=stdin)


def qudata_process(
    *args: str,
    cwd: Path,
    timeout: float = 20,
    memory: int | None = None,
    stdin: Any = subprocess.DEVNULL,
    obey_permissions: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """``python -m qudata ARGS`` in a child: at most ``timeout`` seconds, at most ``memory``
    bytes of address space; with ``obey_permissions``, without the capabilities that let
    root read any file (``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH``), so that a file of
    mode 000 cannot be read even by root."""

    def limit() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if obey_permissions:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
                if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                    raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "qudata", *args],
        cwd=cwd,
        env=env,
        stdin=stdin,
        capture_output=True,
        timeout=timeout,
        preexec_fn=limit,
        check=False,
    )


def one_error_line(text: str) -> str:
    """The single ``Error:`` line of a failed run's output (asserts there is nothing else)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("Error: "), text
    assert "Traceback" not in text and "Aborted!" not in text, text
    return lines[0]


def good_input(folder: Path) -> Path:
    """One readable document beside a test's bad input: a run that writes nothing fails
    (exit 1, nothing published), so a test of how a bad input is counted needs it."""
    path = folder / "good.jsonl"
    path.write_bytes(b'{"id": "good", "text": "A good document."}\n')
    return path


def manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((out / "manifest.json").read_bytes())
    return data


def rejects(out: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (out / "rejects.jsonl").read_bytes().splitlines()]


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def balanced(data: dict[str, Any]) -> bool:
    """Both account identities of a manifest."""
    counts = data["counts"]
    if counts["read"] != counts["accepted"] + sum(counts["dropped"].values()):
        return False
    return all(
        counts["accepted"] == f["documents"] + sum(f["dropped"].values())
        for f in data["formats"].values()
    )


@pytest.fixture
def jsonl() -> Callable[..., Path]:
    """Write ``n`` small documents as JSON Lines (raw bytes returned by ``encode``)."""

    def write(path: Path, n: int = 50, encode: Callable[[bytes], bytes] = lambda b: b) -> Path:
        data = b"".join(
            orjson.dumps({"id": f"d{i}", "text": f"Document number {i}."}) + b"\n" for i in range(n)
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(data))
        return path

    return write
