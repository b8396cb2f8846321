"""Workers forked as the command starts: taken up by the local engine, never holding a
call before they are ready, never holding the command's standard output, ended when
nothing takes them, and refused where a fork is unsafe.

Each case that forks runs in a fresh interpreter: the test process has threads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from qudata.cli_args import spare_warm, spare_workers
from qudata.engines import spares

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_a_forked_worker_serves_the_pool_and_holds_none_of_the_command_s_output() -> None:
    result = _run(
        """
        import os
        from qudata.dedup.text import exact_key
        from qudata.engines import spares
        from qudata.engines.pool import ProcessPool

        spares.fork_spares(2)
        taken = spares.take_spares(2)
        assert len(taken) == 2
        pool = ProcessPool(2, taken)
        pool.start()
        assert pool.ready(0, 30) and pool.ready(1, 30)
        for spare in taken:
            # its standard output is the command's standard error, its input /dev/null
            assert os.readlink(f"/proc/{spare.pid}/fd/1") == os.readlink("/proc/self/fd/2")
            assert os.readlink(f"/proc/{spare.pid}/fd/0") == "/dev/null"
            assert os.getpgid(spare.pid) == spare.pid  # its own process group
        assert pool.map(exact_key, [("a B",), ("b",)]) == [exact_key("a b"), exact_key("b")]
        pids = [p.pid for p in pool._processes]
        pool.close()
        assert sorted(pids) == sorted(s.pid for s in taken)
        assert all(s.poll() == 0 for s in taken)
        print("ok")
        """
    )
    assert result.stdout == "ok\n"


def test_what_the_workers_warm_is_loaded_once_before_the_fork(tmp_path: Path) -> None:
    """The command loads the likely tokenizer once, before it forks: each worker finds
    it loaded (it shares this process's copy) and is ready as it starts."""
    loads = tmp_path / "loads"
    result = _run(
        f"""
        import functools, os
        from qudata.engines import spares
        from qudata.engines.pool import ProcessPool

        @functools.cache
        def load():
            with open({str(loads)!r}, "a") as out:
                out.write(f"{{os.getpid()}}\\n")
            return "tokenizer"

        spares.fork_spares(2, load)
        taken = spares.take_spares(2)
        pool = ProcessPool(2, taken)
        pool.start()
        assert pool.ready(0, 30) and pool.ready(1, 30)
        pool.close()
        print(os.getpid())
        """
    )
    assert loads.read_text().split() == result.stdout.split()  # this process's load only


def test_a_worker_still_warming_takes_no_call_and_a_failed_warm_is_left_alone() -> None:
    result = _run(
        """
        import os, time
        from qudata.engines import spares
        from qudata.engines.local import LocalExecutor
        from qudata.plan.partitions import partition_bytes

        parent = os.getpid()  # a worker still warming (the command's own load is done)
        spares.fork_spares(1, lambda: os.getpid() != parent and time.sleep(3))
        executor = LocalExecutor(2)  # takes the spare
        pool = executor._pool
        assert pool is not None and not pool.ready(0, 0)
        started = time.monotonic()
        calls = [(n << 20,) for n in range(40)]
        assert executor.map(partition_bytes, calls) == [partition_bytes(n << 20) for n in range(40)]
        # this process's lane ran them all: the warming worker held none for 3 s
        assert time.monotonic() - started < 1.5, time.monotonic() - started
        executor.close()

        def fails():
            raise RuntimeError("no such tokenizer")

        deadline = time.monotonic() + 10  # the closed pool's threads are gone
        while len(os.listdir("/proc/self/task")) > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        spares.fork_spares(1, fails)
        assert len(spares._SPARES) == 1
        executor = LocalExecutor(2)
        assert executor._pool is not None and executor._pool.ready(0, 30)
        assert executor._pool.call(0, partition_bytes, (5 << 30,)) == partition_bytes(5 << 30)
        executor.close()
        print("ok")
        """
    )
    assert result.stdout == "ok\n"


def test_spares_nothing_takes_are_ended() -> None:
    result = _run(
        """
        import os, time
        from qudata.engines import spares

        parent = os.getpid()  # a worker still warming (the command's own load is done)
        spares.fork_spares(2, lambda: os.getpid() != parent and time.sleep(60))
        pids = [s.pid for s in spares._SPARES]
        assert len(pids) == 2
        started = time.monotonic()
        spares.end_spares()
        assert time.monotonic() - started < 5  # killed, not waited for
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            raise AssertionError(f"{pid} still runs")
        assert spares.take_spares(1) == []
        print("ok")
        """
    )
    assert result.stdout == "ok\n"


def test_no_fork_while_another_thread_runs() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        spares.fork_spares(1)
        assert spares.take_spares(1) == []
    finally:
        stop.set()
        thread.join()


def test_the_command_line_guesses_the_workers_it_will_want(tmp_path: Path) -> None:
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    small.write_bytes(b"{}\n" * 10)
    with open(big, "wb") as out:
        out.truncate(5 << 20)
    assert spare_workers((str(small),), None, None, 4) == 0  # runs here
    assert spare_workers((str(small), str(big)), None, None, 4) == 3
    assert spare_workers((str(tmp_path),), None, None, 4) == 3  # a folder: unknown
    assert spare_workers(("-",), None, None, 2) == 1
    assert spare_workers((str(big),), "ray", None, 4) == 0
    assert spare_workers((str(small),), None, 3, 4) == 2  # asked for
    assert spare_workers((str(big),), None, 1, 4) == 0
    assert spare_workers((str(big),), None, None, 64) == 4  # 5 partitions of 1 MiB


def test_the_spares_warm_what_the_config_file_names(tmp_path: Path) -> None:
    """The tokenizer, engine and workers of ``--config``, unless the command line names
    them; a file that cannot be read, or a value of the wrong type, is not guessed from.
    numpy comes too, unless the run neither tokenizes nor dedups."""
    config = tmp_path / "pack.yaml"
    config.write_text(
        "quality: {tokenizer: o200k_base, token_threads: 3}\nengine: {name: ray, workers: 5}\n"
    )
    warm, engine, workers = spare_warm(str(config), None, None, None)
    assert (warm.args, engine, workers) == (("o200k_base", 3, True), "ray", 5)
    warm, engine, workers = spare_warm(str(config), "estimate", "local", 2)
    assert (warm.args, engine, workers) == (("estimate", 3, True), "local", 2)
    config.write_text("quality: {tokenizer: 7}\nengine: [ray]\n")
    warm, engine, workers = spare_warm(str(config), None, None, None)
    assert (warm.args, engine, workers) == (("cl100k_base", None, True), None, None)
    config.write_text("quality: {tokenizer: [unclosed\n")
    warm, engine, workers = spare_warm(str(config), None, None, None)
    assert (warm.args, engine, workers) == (("cl100k_base", None, True), None, None)
    warm, _, _ = spare_warm(str(tmp_path / "missing.yaml"), None, None, None)
    assert warm.args == ("cl100k_base", None, True)
    config.write_text("quality: {tokenizer: none}\ndedup: {method: none}\n")
    assert spare_warm(str(config), None, None, None)[0].args == ("none", None, False)
    assert spare_warm(str(config), None, None, None, "exact")[0].args == ("none", None, True)
    assert spare_warm(None, "none", None, None, "none")[0].args == ("none", None, False)
    result = _run(
        """
        import sys
        from qudata.cli_args import spare_warm
        warm, _, _ = spare_warm(None, "none", None, None, "none")
        assert warm() is None and "numpy" not in sys.modules
        warm, _, _ = spare_warm(None, "cl100k_base", None, None, None)
        assert warm() is not None and "numpy" in sys.modules  # the counter, and numpy
        print("ok")
        """
    )
    assert result.stdout == "ok\n"


def test_a_config_given_as_a_pipe_is_read_once_by_the_run(tmp_path: Path) -> None:
    """``--config <(...)`` (a pipe, read once): the spares do not guess from it, the run
    takes its settings (here the one format it names)."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"text": "document {i}"}}\n' for i in range(20)))
    out = tmp_path / "out"
    command = (
        f"{sys.executable} -m qudata pack {source} -o {out} -q "
        "--config <(printf 'pack:\\n  formats: [plain]\\n')"
    )
    run = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["plain"]


def test_spares_stop_at_the_open_files_limit() -> None:
    """More spares than the open-files limit allows pipes for (``engine.workers`` of a
    configuration written for a larger machine): those forked serve, no traceback."""
    result = _run(
        """
        import resource
        from qudata.engines import spares

        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
        spares.fork_spares(40)
        print(0 < len(spares._SPARES) < 40)
        spares.end_spares()
        """
    )
    assert result.stdout.split() == ["True"] and "Traceback" not in result.stderr


def test_the_command_takes_its_forked_workers(tmp_path: Path) -> None:
    """``qudata pack`` forks its workers, and a run with them gives the same bytes."""
    source = tmp_path / "in.jsonl"
    with open(source, "w") as out:
        for i in range(9000):
            words = f"word{i % 977} " * 60
            out.write(f'{{"id": "d{i}", "text": "doc {i} {words}"}}\n')
    code = """
        import sys
        from qudata.engines import spares
        forked = []
        original = spares.fork_spares
        def fork_spares(count, warm=None):
            original(count, warm)
            forked.extend(s.pid for s in spares._SPARES)
        spares.fork_spares = fork_spares
        import qudata.cli, qudata.engines.local as local
        qudata.cli.fork_spares = fork_spares
        taken = []
        original_take = local.take_spares
        local.take_spares = lambda n: taken.extend(original_take(n)) or taken
        sys.argv = ["qudata", *sys.argv[1:]]
        try:
            qudata.cli.main()
        finally:
            print(len(forked), sorted(s.pid for s in taken) == sorted(forked), file=sys.stderr)
    """
    outs = []
    for workers in ("2", "1"):
        out = tmp_path / f"out{workers}"
        args = ["pack", str(source), "-o", str(out), "-f", "jsonl", "--workers", workers, "-q"]
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            capture_output=True, text=True, timeout=300, env={**os.environ},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stderr.split() == (["1", "True"] if workers == "2" else ["0", "True"])
        outs.append((out / "jsonl" / "train-00000-of-00001.jsonl").read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 9000


def test_a_forked_worker_takes_the_environment_the_run_has_when_it_is_taken() -> None:
    """``pack_dataset`` sets the storage options (an environment variable the workers
    read) after the command line forked: the worker sees them as a spawned one would."""
    result = _run(
        """
        import os
        from qudata.engines import spares
        from qudata.engines.pool import ProcessPool
        from qudata.quality.tokens.fast import ENV, enabled

        spares.fork_spares(1)
        os.environ[ENV] = "0"  # after the fork
        pool = ProcessPool(1, spares.take_spares(1))
        pool.start()
        assert pool.call(0, enabled, ()) is False
        pool.close()
        print("ok")
        """
    )
    assert result.stdout == "ok\n"


def test_the_executor_ends_the_spares_it_does_not_take() -> None:
    result = _run(
        """
        import os
        from qudata.config import EngineConfig
        from qudata.engines import make_executor, spares

        spares.fork_spares(3)
        pids = [s.pid for s in spares._SPARES]
        executor = make_executor(EngineConfig(workers=2), 100 << 20, 10)
        taken = [p.pid for p in executor._pool._processes]
        assert len(pids) == 3 and spares._SPARES == []
        assert len(taken) == 1 and taken[0] in pids  # the other two were ended
        for pid in pids:
            if pid != taken[0]:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                raise AssertionError(f"{pid} still runs")
        executor.close()
        print("ok")
        """
    )
    assert result.stdout == "ok\n"


STREAMS = "from qudata.engines import spares; spares.fork_spares(1); print(len(spares._SPARES))"


def test_no_fork_with_a_standard_stream_closed(tmp_path: Path) -> None:
    """A closed descriptor 1 would be reused by a pipe, which the worker's redirection of
    its standard output would then close: the run spawns its workers instead."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"id": "d{i}", "text": "doc {i} words"}}\n' for i in range(50)))
    closed = subprocess.run(
        ["bash", "-c", f'exec "{sys.executable}" -c "$0" 2>&1 0<&-', STREAMS],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert closed.stdout.strip() == "0", closed.stdout
    run = subprocess.run(
        ["bash", "-c", f'exec "{sys.executable}" -m qudata "$@" >&-', "qudata", "pack",
         str(source), "-o", str(tmp_path / "out"), "-f", "jsonl", "--workers", "2", "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = (tmp_path / "out" / "jsonl" / "train-00000-of-00001.jsonl").read_bytes()
    assert lines.count(b"\n") == 50


def test_the_command_starts_no_blas_threads_and_quiets_the_collector(tmp_path: Path) -> None:
    """qudata makes no BLAS call: numpy, imported during the run, starts no OpenBLAS
    thread, which would spin on the cores the run needs. The cycle collector leaves the
    imported modules' objects aside (frozen) and runs less often."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"text": "document {i} " }}\n' for i in range(50)))
    result = _run(
        f"""
        import gc, os, sys
        os.environ["OPENBLAS_NUM_THREADS"] = "4"  # the environment's: qudata makes no BLAS call
        from qudata.cli import main
        sys.argv = ["qudata", "pack", {str(source)!r}, "-o", {str(tmp_path / "out")!r}, "-q"]
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code
        assert "numpy" in sys.modules  # the dedup step imported it
        print(os.environ.get("OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task")))
        print(gc.get_freeze_count() > 10_000, *gc.get_threshold())
        """
    )
    assert result.stdout.split() == ["1", "1", "True", "10000", "50", "50"]
