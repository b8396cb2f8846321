"""Worker processes forked as the command starts, for the local engine to take up.

A worker started by :class:`~qudata.engines.pool.ProcessPool` is a new interpreter: it
imports qudata (about 0.2 s) after the run has planned, so for the first part of map 1
the run has one lane. The command line knows earlier that it will want workers: as
``qudata pack`` starts, before any thread exists, :func:`fork_spares` forks them from
the command's own process, which has imported qudata already. A forked worker has the
same code as a spawned one and serves the same pipe protocol
(:func:`~qudata.engines.pool.serve_on`); it only skips the imports, and the tokenizer
the command line names, loaded once before the fork, is shared.

Fork is safe here and nowhere later: the process has one thread, native ones counted
(a fork with more copies locks they hold). Elsewhere (the Python API, a notebook, a
system other than Linux) nothing is forked, and the pool spawns its workers as
before. A spare the run does not take (one worker, a small input, Ray) is ended by
:func:`end_spares`, or dies with this process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from qudata.engines.pool import prepare, serve_on

__all__ = ["Forked", "end_spares", "fork_spares", "forked_workers", "take_spares"]

_SPARES: list[Forked] = []


class Forked:
    """A forked worker, with what the pool uses of :class:`subprocess.Popen`."""

    def __init__(self, pid: int, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self.pid = pid
        self.stdin: IO[bytes] | None = stdin
        self.stdout: IO[bytes] | None = stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
            time.sleep(0.005)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


@contextmanager
def forked_workers(count: int, warm: Callable[[], object] | None = None) -> Iterator[None]:
    """:func:`fork_spares` for a command; the spares nothing took end with it."""
    fork_spares(count, warm)
    try:
        yield
    finally:
        end_spares()


def fork_spares(count: int, warm: Callable[[], object] | None = None) -> None:
    """Fork ``count`` workers now, if this process may fork: Linux, one thread, its
    standard streams open (a closed one's number would go to a pipe, which the worker's
    redirections would then close). ``warm``: what each worker's first call will likely
    need (a cached loader: the tokenizer), run here before the fork with the stages'
    imports (:func:`~qudata.engines.pool.prepare`), and again by each worker before it
    says it is ready, which finds it loaded: the workers share what this process loaded
    once (a tokenizer loaded in each process cost 0.16-0.23 s of a core in each)."""
    if count < 1 or not sys.platform.startswith("linux") or _threads() > 1:
        return
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return
    prepare(warm)  # once, here: every worker has it at its fork, and so does this process
    if _threads() > 1:  # what it loaded started a thread: no fork now
        return
    parent = os.getpid()
    for _ in range(count):
        fds: list[int] = []
        try:
            fds.extend(os.pipe())
            fds.extend(os.pipe())
            pid = os.fork()
        except OSError:  # no more processes or files: the pool spawns what it needs
            for fd in fds:
                os.close(fd)
            return
        requests_in, requests_out, replies_in, replies_out = fds
        if pid == 0:  # the worker: it never returns into the command's code
            code = 1
            try:
                _become_worker(requests_out, replies_in)
                requests, replies = os.fdopen(requests_in, "rb"), os.fdopen(replies_out, "wb")
                serve_on(requests, replies, parent, warm)
                code = 0
            except BaseException:  # as a spawned worker would print it, before it ends
                traceback.print_exc()
                sys.stderr.flush()
            finally:
                os._exit(code)
        os.close(requests_in)
        os.close(replies_out)
        stdin, stdout = os.fdopen(requests_out, "wb"), os.fdopen(replies_in, "rb")
        _SPARES.append(Forked(pid, stdin, stdout))


def _threads() -> int:
    """This process's threads, native ones included (a library's thread pool)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return max(2, threading.active_count())  # unknown: no fork


def _become_worker(*parent_ends: int) -> None:
    """In a forked worker: its own process group (the terminal's Ctrl-C goes to the
    command only), SIGTERM's default action, no descriptor of the command's (its
    other workers' pipes, its standard input, its standard output: a reader of the
    command's output must see its end when the command ends)."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for fd in parent_ends:
        os.close(fd)
    for spare in _SPARES:
        for stream in (spare.stdin, spare.stdout):
            if stream is not None:
                os.close(stream.fileno())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)


def take_spares(count: int) -> list[Forked]:
    """Up to ``count`` of the spares still running, now the caller's."""
    taken: list[Forked] = []
    while _SPARES and len(taken) < count:
        spare = _SPARES.pop(0)
        if spare.poll() is None:
            taken.append(spare)
    return taken


def end_spares() -> None:
    """End the spares nothing took (killed: one may still be loading what it warms, and
    none holds anything of the run's)."""
    spares, _SPARES[:] = list(_SPARES), []
    for spare in spares:
        spare.kill()
        spare.wait()
        for stream in (spare.stdin, spare.stdout):
            assert stream is not None
            with contextlib.suppress(OSError):  # a request pipe whose reader was killed
                stream.close()
