"""The local executor: calls in this process and in its worker processes, results in
call order, every call reported once."""

from __future__ import annotations

from typing import Any

from qudata.engines.local import LocalExecutor
from qudata.plan.partitions import partition_bytes


def test_a_lone_call_runs_here() -> None:
    executor = LocalExecutor(2)
    try:
        # ``len`` is not qudata's: a worker refuses it, this process does not
        assert executor.map(len, [("here",)]) == [4]
    finally:
        executor.close()


def test_results_come_in_call_order_and_every_call_is_reported_once() -> None:
    sizes = [n * 7_919_993 for n in range(200)]
    executor = LocalExecutor(3)
    reported: list[tuple[int, Any]] = []
    consumed: list[int] = []
    try:
        calls = [(size,) for size in sizes]
        done = executor.map(partition_bytes, calls, lambda n, r: reported.append((n, r)))
        executor.map(partition_bytes, calls, consume=consumed.append)
    finally:
        executor.close()
    expected = [partition_bytes(size) for size in sizes]
    assert done == expected and consumed == expected
    assert sorted(reported) == list(enumerate(expected))


def test_one_worker_runs_everything_here() -> None:
    executor = LocalExecutor(1)
    assert executor.map(len, [("a",), ("bc",)]) == [1, 2]
    executor.close()
