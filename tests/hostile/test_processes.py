"""Processes: Ctrl-C and SIGTERM end cleanly, workers die with a killed parent, the Python
API runs without a __main__ guard, a missing extra is one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from qudata.dedup.text import exact_key
from qudata.engines.pool import ProcessPool
from qudata.errors import WorkerError

from .hostile_limits import ROOT, run_qudata, subprocess_env, time_limit

# Makes map 1 sleep in the worker processes only: the run waits on its workers, which is
# when an interrupt or a kill must still end everything. The command line forks its
# workers (qudata.engines.spares) from a process that has run this already: a forked
# worker is told by its pid.
SLOW_WORKERS = """\
import functools, os, sys, time
COMMAND = os.getpid()  # a worker: spawned (python -c) or forked (another pid)
import qudata.stages.scan as scan
original = scan.scan_partition

@functools.wraps(original)
def scan_partition(job, index):
    if sys.argv[:1] == ["-c"] or os.getpid() != COMMAND:
        time.sleep(120)
    return original(job, index)

scan.scan_partition = scan_partition
"""


def _big_input(path: Path, documents: int = 2600) -> Path:
    """About 2 MB: two partitions, so two workers start."""
    with open(path, "wb") as out:
        for i in range(documents):
            text = f"doc {i} " + f"word{i} " * 100
            out.write(orjson.dumps({"id": f"d{i}", "text": text}) + b"\n")
    return path


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _session(sid: int) -> list[str]:
    """The live processes of a session (zombies have ended: only their parent's reaping,
    here the container's init, is left)."""
    out = subprocess.run(["ps", "-eo", "pid=,sid=,stat=,args="], capture_output=True, text=True)
    rows = [line.split(None, 3) for line in out.stdout.splitlines()]
    return [row[3] for row in rows if len(row) == 4 and int(row[1]) == sid and row[2][0] != "Z"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not yet reaped by its parent) has finished too
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


@pytest.fixture
def slow_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_WORKERS)
    return subprocess_env(_path=str(site))


@pytest.fixture
def running(tmp_path: Path, slow_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A run into an existing dataset (--overwrite), waiting on its two worker processes
    (``--workers 3``: this process is the third lane)."""
    source = _big_input(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    first = run_qudata(
        [
            "pack",
            str(tmp_path / "in.jsonl"),
            "-o",
            str(out),
            "--tokenizer",
            "none",
            "-f",
            "jsonl",
            "-q",
        ],
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qudata",
            "pack",
            str(source),
            "-o",
            str(out),
            "--overwrite",
            "--workers",
            "3",
            "--tokenizer",
            "none",
            "-q",
        ],
        env=slow_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own session: every process it starts can be found
    )
    deadline = time.monotonic() + 60
    while len(_children(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_children(process.pid)) == 2, "the run did not start its workers"
    time.sleep(0.5)  # the workers have their requests
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate()  # reaps it and closes its pipes


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_is_one_line_and_leaves_the_old_dataset(
    running: subprocess.Popen[str], tmp_path: Path, signum: int, code: int
) -> None:
    out = tmp_path / "out"
    manifest = (out / "manifest.json").read_bytes()
    workers = _children(running.pid)
    # Ctrl-C at a terminal signals the whole foreground process group
    os.killpg(running.pid, signum) if signum == signal.SIGINT else running.send_signal(signum)
    _, stderr = running.communicate(timeout=30)
    assert running.returncode == code
    assert stderr.strip() == "Interrupted: nothing was published"
    assert _wait_gone(workers, 5) == []
    assert (out / "manifest.json").read_bytes() == manifest
    assert [p.name for p in tmp_path.iterdir() if ".qudata-" in p.name] == []


def test_workers_die_with_a_killed_parent(running: subprocess.Popen[str]) -> None:
    workers = _children(running.pid)
    running.kill()
    running.communicate()
    assert _wait_gone(workers, 5) == []
    # nothing of the run is left: no worker, no resource tracker, no fork server
    time.sleep(0.2)
    assert _session(running.pid) == []


def test_the_api_runs_at_module_level_without_a_main_guard(tmp_path: Path) -> None:
    source = _big_input(tmp_path / "in.jsonl")
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            import qudata
            print("script body ran", flush=True)
            report = qudata.pack_dataset([{str(source)!r}], {str(tmp_path / "out")!r},
                                         config={{"quality": {{"tokenizer": "none"}},
                                                 "engine": {{"workers": 2}}}},
                                         formats=["jsonl"])
            print("accepted", report.accepted, flush=True)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["script body ran", "accepted 2600"]


HIDE = "import sys\nfor name in {names!r}:\n    sys.modules[name] = None\n"


@pytest.mark.parametrize("names", [["ray"], ["ray", "numpy"]])
def test_engine_ray_without_ray_is_one_line(tmp_path: Path, names: list[str]) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE.format(names=names))
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"text": "hello"}\n')
    result = run_qudata(
        [
            "pack",
            str(source),
            "-o",
            str(tmp_path / "out"),
            "--engine",
            "ray",
            "--tokenizer",
            "none",
        ],
        env=subprocess_env(_path=str(site)),
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Error: --engine ray needs the optional package 'ray': pip install 'qudata[ray]'"
    ]
    assert not (tmp_path / "out").exists()


def test_the_pool_returns_results_in_order_and_reports_failures() -> None:
    pool = ProcessPool(2)
    try:
        with time_limit(30):
            assert pool.map(exact_key, [("a B",), ("b",)]) == [exact_key("a B"), exact_key("b")]
            with pytest.raises(WorkerError, match="TypeError"):
                pool.map(exact_key, [(None,)])
            # the pool still works after a failed call
            assert pool.map(exact_key, [("c",)]) == [exact_key("c")]
    finally:
        pool.close()
    assert pool._processes == []


def test_a_worker_ignores_sigint_and_exits_at_end_of_input() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "from qudata.engines.pool import serve; serve()", str(os.getpid())],
        stdin=subprocess.PIPE,
        env=subprocess_env(),
        cwd=ROOT,
    )
    time.sleep(1.0)  # started, SIGINT ignored
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    assert process.poll() is None
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=10) == 0


FULL_IN_WORKERS = """\
import errno, functools, os, sys
COMMAND = os.getpid()  # a worker: spawned (python -c) or forked (another pid)
import qudata.stages.write as write
original = write.write_partition

@functools.wraps(original)
def write_partition(job, index):
    if sys.argv[:1] == ["-c"] or os.getpid() != COMMAND:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(job.part_file("jsonl", index)))
    return original(job, index)

write.write_partition = write_partition
"""


def test_a_full_disk_in_a_worker_is_one_line_and_publishes_nothing(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FULL_IN_WORKERS)
    source = _big_input(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    args = ["pack", str(source), "-o", str(out), "--workers", "2", "--tokenizer", "none"]
    result = run_qudata([*args, "-f", "jsonl"], env=subprocess_env(_path=str(site)))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot complete")
    assert "No space left on device" in lines[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if ".qudata-" in p.name] == []
