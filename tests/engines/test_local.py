"""The local executor: calls here or in its worker processes, results in call order."""

from __future__ import annotations

import pytest

from qudata.engines.local import LocalExecutor, usable_cpus
from qudata.errors import WorkerError


def test_a_lone_call_runs_here_until_the_workers_are_started() -> None:
    executor = LocalExecutor(2)
    try:
        # ``len`` is not qudata's: a worker refuses it, this process does not
        assert executor.map(len, [("here",)]) == [4]
        assert executor.map(usable_cpus, [(), ()]) == [usable_cpus()] * 2
        # the workers are up: a lone call (a sequential step of dedup) goes to one
        with pytest.raises(WorkerError, match="only qudata's functions run in a worker"):
            executor.map(len, [("there",)])
    finally:
        executor.close()


def test_one_worker_runs_everything_here() -> None:
    executor = LocalExecutor(1)
    assert executor.map(len, [("a",), ("bc",)]) == [1, 2]
    executor.close()
