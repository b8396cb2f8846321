"""The local engine's worker processes: plain subprocesses fed by pipes.

Why not :mod:`multiprocessing` (or ``concurrent.futures``): its ``spawn`` start
method imports the caller's ``__main__`` in every worker, so a script calling
:func:`qudata.pack_dataset` without an ``if __name__ == "__main__"`` guard runs
again in each worker (and fails with ``BrokenProcessPool``); its queues start a
resource-tracker process that outlives a killed run; and a Ctrl-C reaches every
worker, which prints its own traceback. ``fork`` is no cure: the parent holds
threads (tokenizers, progress). Only the command line forks, as it starts and has one
thread: :mod:`qudata.engines.spares` (those workers serve the same protocol).

Here a worker is ``python -c 'from qudata.engines.pool import serve; serve()'``:

* it imports only qudata (never the caller's script);
* it runs in its own process group, so the terminal's Ctrl-C reaches only the
  parent, which decides (and ends the workers); it ignores SIGINT besides;
* it dies with the parent: ``PR_SET_PDEATHSIG`` (Linux, via ``prctl``) sends it
  SIGKILL when the parent dies, and a watcher thread checks the parent's pid
  twice a second (other systems, or a parent that died before ``prctl``); an
  idle worker also ends when its request pipe reaches end of file;
* no other process (no resource tracker, no fork server) is started.

A worker first says it is ready (``(True, "ready")``, once its imports are done);
then a request is one pickled ``(module, function, args)``, length-prefixed, on the
worker's standard input; the reply, ``(ok, value)``, comes back on its standard
output. Only qudata's own functions are called.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from qudata.errors import QudataError, WorkerError, error_state, rebuild_error

__all__ = [
    "COLLECTOR_THRESHOLDS",
    "ProcessPool",
    "Worker",
    "prepare",
    "quiet_collector",
    "serve",
    "serve_on",
]

_HEADER = struct.Struct("<Q")
#: the cycle collector's thresholds in a run's processes (Python's: 700, 10, 10)
COLLECTOR_THRESHOLDS = (10_000, 50, 50)
#: what a worker imports as it starts, before its first request (the map stages)
_WARM = ("qudata.stages.scan", "qudata.stages.write")
_PR_SET_PDEATHSIG = 1
_READY = (True, "ready")


def _write(stream: IO[bytes], payload: Any) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class Worker(Protocol):
    """What the pool uses of a worker process (:class:`subprocess.Popen`, or one forked
    ahead by :mod:`qudata.engines.spares`)."""

    stdin: IO[bytes] | None
    stdout: IO[bytes] | None

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class ProcessPool:
    """``workers`` processes, started on first use; :meth:`map` runs one call per worker.

    Example::

        pool = ProcessPool(2)
        pool.map(exact_keys, [(texts[:n],), (texts[n:],)])  # two lists of keys
        pool.close()
    """

    def __init__(self, workers: int, started: Sequence[Worker] = ()) -> None:
        self.workers = workers
        self._started = list(started)[:workers]  # already running: taken first
        self._adopted: list[bool] = []  # per worker: forked ahead (its environment is old)
        self._processes: list[Worker] = []
        self._ready: list[bool] = []  # per worker: its "ready" was read
        self._busy = False
        self._in_flight = 0  # calls of :meth:`call` not yet answered
        self._lock = threading.Lock()

    def _start(self) -> None:
        env = dict(os.environ)
        # the worker imports qudata from where this process did
        here = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([here, *(p for p in sys.path if p and p != here)])
        code = "from qudata.engines.pool import serve; serve()"
        # its own process group: the terminal's Ctrl-C goes to the parent only
        group: dict[str, Any] = (
            {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
        )
        self._ready = [False] * self.workers
        self._processes, self._started = self._started, []
        spawned = self.workers - len(self._processes)
        self._adopted = [True] * len(self._processes) + [False] * spawned
        for _ in range(spawned):
            self._processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", code, str(os.getpid())],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                    **group,
                )
            )

    def map(self, function: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``function(*args)`` for each ``args`` of ``calls`` (at most one per worker),
        in the workers; the results in order."""
        if len(calls) > self.workers:
            raise ValueError(f"{len(calls)} calls for {self.workers} workers")
        if not self._processes:
            self._start()
        self._busy = True
        name = (function.__module__, function.__qualname__)
        try:
            for worker in range(len(calls)):
                self.ready(worker, None)
            for process, args in zip(self._processes, calls, strict=False):
                assert process.stdin is not None
                _write(process.stdin, (*name, args))
            results = []
            for process, _ in zip(self._processes, calls, strict=False):
                assert process.stdout is not None
                ok, value = _read(process.stdout)
                if not ok:
                    raise _failure(value)
                results.append(value)
        except (EOFError, BrokenPipeError, OSError) as exc:
            codes = [p.poll() for p in self._processes]
            raise WorkerError(
                f"a worker process ended unexpectedly (exit codes {codes}): {exc!r}"
            ) from None
        self._busy = False
        return results

    def call(self, worker: int, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """``function(*args)`` in worker number ``worker`` (one call at a time per worker;
        calls on different workers may run from different threads)."""
        self.send(worker, function, args)
        return self.receive(worker)

    def send(self, worker: int, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """The first half of :meth:`call`: the request, once the worker is ready."""
        if not self._processes:
            raise WorkerError("the worker processes were ended (the run was stopped)")
        process = self._processes[worker]
        assert process.stdin is not None
        with self._lock:
            self._in_flight += 1
        try:
            self.ready(worker, None)
            _write(process.stdin, (function.__module__, function.__qualname__, args))
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise self._ended(worker, exc) from None

    def receive(self, worker: int) -> Any:
        """The second half of :meth:`call`: its reply (a failure raised here)."""
        if not self._processes:
            raise WorkerError("the worker processes were ended (the run was stopped)")
        process = self._processes[worker]
        assert process.stdout is not None
        try:
            ok, value = _read(process.stdout)
            with self._lock:
                self._in_flight -= 1
        except (EOFError, OSError, ValueError) as exc:
            raise self._ended(worker, exc) from None
        if not ok:
            raise _failure(value)
        return value

    def _ended(self, worker: int, exc: BaseException) -> WorkerError:
        code = self._processes[worker].poll() if worker < len(self._processes) else None
        return WorkerError(f"a worker process ended unexpectedly (exit code {code}): {exc!r}")

    def ready(self, worker: int, timeout: float | None) -> bool:
        """Whether worker number ``worker`` has done its imports and takes calls,
        waiting at most ``timeout`` seconds (None: until it is)."""
        if self._ready[worker]:
            return True
        stdout = self._processes[worker].stdout
        assert stdout is not None
        if timeout is not None and not select.select([stdout], [], [], timeout)[0]:
            return False
        try:
            said = _read(stdout)
        except (EOFError, OSError, ValueError) as exc:
            said = exc
        if said != _READY:
            code = self._processes[worker].poll()
            raise WorkerError(f"a worker process did not start (exit code {code}): {said!r}")
        if self._adopted[worker]:  # as a spawned worker would: this process's environment
            stdin = self._processes[worker].stdin  # now (the storage options, set since)
            assert stdin is not None
            try:
                _write(stdin, (__name__, adopt_environment.__qualname__, (dict(os.environ),)))
                said = _read(stdout)
            except (EOFError, OSError, ValueError) as exc:
                said = exc
            if said != (True, None):
                raise WorkerError(f"a worker process did not take the environment: {said!r}")
        self._ready[worker] = True
        return True

    def start(self) -> None:
        """Start the workers now (they start on first use otherwise)."""
        if not self._processes:
            self._start()

    def close(self) -> None:
        """End the workers: an idle worker exits at the end of its input; one still
        busy (an interrupted :meth:`map`) is killed at once."""
        processes, self._processes = self._processes, []
        busy = self._busy or self._in_flight > 0
        for process in processes:
            if busy:
                process.kill()
            elif process.stdin is not None:
                try:
                    process.stdin.close()
                except OSError:
                    process.kill()
        deadline = time.monotonic() + 5
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        self._busy = False
        self._in_flight = 0

    def __del__(self) -> None:
        for process in self._processes:
            process.kill()


def adopt_environment(environ: dict[str, str]) -> None:
    """In a worker: ``environ`` is its environment from now on."""
    os.environ.clear()
    os.environ.update(environ)


def _failure(value: Any) -> QudataError | OSError:
    """The error a worker replied: its own qudata error rebuilt, or a WorkerError."""
    if isinstance(value, tuple):
        return rebuild_error(value)
    return WorkerError(f"a worker process failed: {value}")


def _die_with(parent: int) -> None:
    """SIGKILL when the parent dies (Linux), and a watcher for every system."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="qudata-parent-watch", daemon=True).start()


def quiet_collector() -> None:
    """Set a run's process's cycle collector aside from what it has imported, and make it
    run less often. The stages make millions of short-lived containers and few cycles;
    each full pass would walk the imported modules' objects too (frozen here, which
    also keeps a forked worker from copying their pages as the collector touches them).
    Measured on ``-f megatron`` at 50 MB: 0.09 CPU-s less of 3.2."""
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def serve() -> None:
    """The worker's loop: requests from standard input, replies on standard output."""
    parent = int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid()
    serve_on(sys.stdin.buffer, sys.stdout.buffer, parent)


def prepare(warm: Callable[[], object] | None = None) -> None:
    """What a worker does before it says it is ready: the stages' imports, and ``warm``
    (what its first call will likely need, such as the tokenizer; a failure is left for
    that call to meet)."""
    for module in _WARM:
        importlib.import_module(module)
    if warm is not None:
        with contextlib.suppress(Exception):
            warm()


def serve_on(
    requests: IO[bytes],
    replies: IO[bytes],
    parent: int,
    warm: Callable[[], object] | None = None,
) -> None:
    """The worker's loop on these streams (:func:`serve`; a forked worker's pipes).
    ``warm``: run before the worker says it is ready (what its first call will likely
    need, such as the tokenizer); its failure is left for that call to meet."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides
    _die_with(parent)
    sys.stdout = sys.stderr  # a stray print must not corrupt the replies
    prepare(warm)  # while the parent plans (a forked worker has it from its parent)
    quiet_collector()
    _write(replies, _READY)
    while True:
        try:
            module, name, args = _read(requests)
        except EOFError:
            return
        try:
            if module.split(".")[0] != "qudata":
                raise ValueError(f"{module}: only qudata's functions run in a worker")
            function = getattr(importlib.import_module(module), name)
            reply: tuple[bool, Any] = (True, function(*args))
        except (QudataError, OSError) as exc:  # raised again in the parent as it is
            reply = (False, error_state(exc))
        except Exception as exc:  # sent to the parent, which raises it
            reply = (False, f"{type(exc).__name__}: {exc}")
        _write(replies, reply)
