"""The local executor: the plan's stage calls in this process or in a process pool.

``workers`` 1 runs every call here, in order (for debugging, and for small inputs).
``workers`` N runs calls in N lanes: this process's main thread, and N - 1 worker
processes of :class:`~qudata.engines.pool.ProcessPool`, each driven by a thread of a
:class:`concurrent.futures.ThreadPoolExecutor`. The lane in this process starts at
once, while the worker processes are still importing qudata (a fifth of a second;
none for the workers the command line forked ahead, :mod:`~qudata.engines.spares`),
and needs no pickling; a worker's lane takes a call only once its process is ready.
Results come back in call order, so what the driver does with them never depends on
which lane finished first.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from qudata.engines.pool import ProcessPool
from qudata.engines.spares import take_spares

__all__ = ["LocalExecutor", "usable_cpus"]


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """Runs stage calls in ``workers`` lanes: this process's main thread and
    ``workers - 1`` worker processes (1: all here, in order)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPool | None = None
        self._threads: ThreadPoolExecutor | None = None
        if self.workers > 1:  # they import qudata while this process plans and scans
            self._start()

    def map(
        self,
        function: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        on_done: Callable[[int, Any], None] | None = None,
        consume: Callable[[Any], None] | None = None,
    ) -> list[Any]:
        """``function(*args)`` for every ``args`` of ``calls``; results in call order.
        ``on_done(i, result)`` is called (in this thread) as call ``i`` completes. With
        ``consume``, each result is handed to it in call order as soon as the calls
        before it are done, and not kept (the list returned is empty).

        The calls are taken in order by whichever lane is free. This thread runs its
        share itself (so Ctrl-C interrupts it at once, as with one worker) and, between
        two of its calls, hands on what the worker processes finished.
        """
        results: list[Any] = []
        keep = results.append if consume is None else consume
        if self.workers == 1 or len(calls) <= 1:
            for number, args in enumerate(calls):
                result = function(*args)
                if on_done is not None:
                    on_done(number, result)
                keep(result)
            return results
        threads = self._start()
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for number in range(len(calls)):
            todo.put(number)
        done: queue.SimpleQueue[tuple[int, bool, Any]] = queue.SimpleQueue()
        settled = [threading.Event() for _ in range(self.workers - 1)]
        lanes = [
            threads.submit(self._lane, worker, function, calls, todo, done, settled[worker])
            for worker in range(self.workers - 1)
        ]
        finished: dict[int, Any] = {}
        following = 0  # the next call whose result is handed on

        def take(number: int, ok: bool, value: Any) -> None:
            nonlocal following
            if not ok:
                raise value
            if on_done is not None:
                on_done(number, value)
            finished[number] = value
            while following in finished:
                keep(finished.pop(following))
                following += 1

        try:
            for event in settled:  # the ready workers' first calls are sent before ours
                event.wait(0.1)
            while True:
                while not done.empty():
                    take(*done.get())
                try:
                    number = todo.get_nowait()
                except queue.Empty:
                    break
                take(number, True, function(*calls[number]))
            while following < len(calls):
                try:
                    take(*done.get(timeout=0.5))
                except queue.Empty:
                    continue
        except BaseException:
            while not todo.empty():  # the lanes take no further call
                todo.get_nowait()
            self.close()  # kills busy workers: their lanes stop waiting
            raise
        for lane in lanes:
            lane.result()
        return results

    def _lane(
        self,
        worker: int,
        function: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        todo: queue.SimpleQueue[int],
        done: queue.SimpleQueue[tuple[int, bool, Any]],
        settled: threading.Event,
    ) -> None:
        """One worker process's lane: calls from ``todo`` until none is left or one fails.
        It takes none before its process is ready (a call taken early would wait for the
        worker's imports while this process's lane could have run it). ``settled`` is
        set once its first request is sent, or it has none to send yet: the main lane
        waits for that, as its own first call may hold the GIL for a while (loading a
        tokenizer), and this thread needs the GIL to send."""
        assert self._pool is not None
        try:
            try:
                if not self._pool.ready(worker, 0):
                    settled.set()  # not ready: the main lane does not wait for it
                    while not self._pool.ready(worker, 0.02):
                        if todo.empty():
                            return
            except BaseException as exc:
                done.put((-1, False, exc))
                return
            while True:
                try:
                    number = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    self._pool.send(worker, function, calls[number])
                    settled.set()
                    done.put((number, True, self._pool.receive(worker)))
                except BaseException as exc:
                    done.put((number, False, exc))
                    return
        finally:
            settled.set()

    def _start(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._pool = ProcessPool(self.workers - 1, take_spares(self.workers - 1))
            self._pool.start()
            self._threads = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="qudata-pool")
        return self._threads

    def close(self) -> None:
        """End the worker processes (busy ones are killed)."""
        pool, self._pool = self._pool, None
        threads, self._threads = self._threads, None
        if pool is not None:
            pool.close()
        if threads is not None:
            threads.shutdown(wait=True, cancel_futures=True)
