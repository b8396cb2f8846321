"""The local executor: the plan's stage calls in this process or in a process pool.

``workers`` 1 runs every call here, in order (for debugging, and for small inputs).
More workers run calls in the processes of :class:`~qudata.engines.pool.ProcessPool`,
scheduled by a :class:`concurrent.futures.ThreadPoolExecutor` whose threads each
drive one worker process; results come back in call order, so what the driver does
with them never depends on which worker finished first.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from qudata.engines.pool import ProcessPool

__all__ = ["LocalExecutor", "usable_cpus"]


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """Runs stage calls with ``workers`` processes (1: in this process)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPool | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._idle: queue.SimpleQueue[int] = queue.SimpleQueue()

    def map(
        self,
        function: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        on_done: Callable[[int], None] | None = None,
        consume: Callable[[Any], None] | None = None,
    ) -> list[Any]:
        """``function(*args)`` for every ``args`` of ``calls``; results in call order.
        ``on_done(i)`` is called (in this thread) as call ``i`` completes. A single call
        runs in this process unless the workers are already started. With
        ``consume``, each result is handed to it in call order as soon as the calls
        before it are done, and not kept (the list returned is empty)."""
        results: list[Any] = []
        keep = results.append if consume is None else consume
        # a lone call goes to a worker only if the pool is up (no start for one call)
        if self.workers == 1 or (len(calls) <= 1 and self._threads is None):
            for number, args in enumerate(calls):
                keep(function(*args))
                if on_done is not None:
                    on_done(number)
            return results
        threads = self._start()
        futures = [threads.submit(self._call, function, args) for args in calls]
        pending = set(futures)
        index = {future: number for number, future in enumerate(futures)}
        following = 0  # the next call whose result is handed on
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in sorted(done, key=index.__getitem__):
                    future.result()  # raises the first failure
                    if on_done is not None:
                        on_done(index[future])
                while following < len(futures) and futures[following].done():
                    keep(futures[following].result())
                    futures[following] = None  # type: ignore[call-overload]
                    following += 1
        except BaseException:
            for future in futures:
                if future is not None:
                    future.cancel()
            self.close()  # kills busy workers: their threads stop waiting
            raise
        return results

    def _start(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._pool = ProcessPool(self.workers)
            self._pool.start()
            for worker in range(self.workers):
                self._idle.put(worker)
            self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="qudata-pool")
        return self._threads

    def _call(self, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        assert self._pool is not None
        worker = self._idle.get()
        try:
            return self._pool.call(worker, function, args)
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        """End the worker processes (busy ones are killed)."""
        pool, self._pool = self._pool, None
        threads, self._threads = self._threads, None
        if pool is not None:
            pool.close()
        if threads is not None:
            threads.shutdown(wait=True, cancel_futures=True)
        self._idle = queue.SimpleQueue()
