"""The Ray executor: ``qudata pack --engine ray`` runs the plan's stage calls as Ray tasks.

The stages are the local engine's own (:mod:`qudata.stages`), so the output is the
same, byte for byte; only the ``run`` section of ``manifest.json`` differs. Each call
is one task: map 1 and map 2 per partition, the commit per format. Tasks read their
partition themselves (a local path every node sees at the same place, or an fsspec
URI, copied to the node) and write their part files straight into the staging folder,
which must therefore be on a file system every node shares. The driver never touches a
record: it plans the partitions, resolves duplicates on compact keys, plans the mix
and adds up the partitions' accounts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from qudata.config import EngineConfig, parse_size
from qudata.errors import ConfigError, MissingExtraError, QudataError, error_state, rebuild_error

from .ray_inputs import expand_sources

__all__ = ["RayExecutor", "expand_sources", "ray_session"]

LOCAL_CPUS = 2
LOCAL_OBJECT_STORE = 200 * 1024**2


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", "ray", feature="--engine ray") from None
    return ray


def _call(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
    """One stage call in a Ray task; a qudata error comes back as data."""
    try:
        return True, function(*args)
    except (QudataError, OSError) as exc:
        return False, error_state(exc)


class RayExecutor:
    """Runs stage calls as Ray tasks (one CPU each), on the cluster of ``engine``."""

    name = "ray"

    def __init__(self, engine: EngineConfig) -> None:
        self._session = ray_session(engine)
        self._session.__enter__()
        ray = _import_ray()
        self.workers = int(ray.cluster_resources().get("CPU", 1))
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_call)

    def map(
        self,
        function: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        on_done: Callable[[int, Any], None] | None = None,
        consume: Callable[[Any], None] | None = None,
    ) -> list[Any]:
        """As :meth:`qudata.engines.local.LocalExecutor.map`."""
        ray = _import_ray()
        refs: list[Any] = [self._remote.remote(function, args) for args in calls]
        number = {ref: n for n, ref in enumerate(refs)}
        pending = list(refs)
        finished: dict[int, Any] = {}
        results: list[Any] = []
        keep = results.append if consume is None else consume
        following = 0
        try:
            while pending:  # what is done each half second (a wait per task costs the driver)
                done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
                for ref in done:
                    ok, value = ray.get(ref)
                    if not ok:
                        raise rebuild_error(value)
                    finished[number[ref]] = value
                    if on_done is not None:
                        on_done(number[ref], value)
                while following in finished:
                    keep(finished.pop(following))
                    following += 1
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return results

    def close(self) -> None:
        self._session.__exit__(None, None, None)


@contextmanager
def ray_session(engine: EngineConfig) -> Iterator[None]:
    """A Ray instance for a run: the running one, ``engine.address``, or a local one
    (``engine.num_cpus``, default 2; ``engine.object_store_memory``, default 200 MB),
    stopped at the end if this run started it."""
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if not engine.address:
            memory = engine.object_store_memory
            options.update(
                num_cpus=engine.num_cpus or LOCAL_CPUS,
                object_store_memory=parse_size(memory) if memory else LOCAL_OBJECT_STORE,
                include_dashboard=False,
            )
        try:
            ray.init(address=engine.address, **options)
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError, ...
            where = f"at {engine.address}" if engine.address else "locally"
            message = " ".join(str(exc).split())
            raise ConfigError(f"cannot start or join Ray {where}: {message}") from None
        started = True
    try:
        yield
    finally:
        if started:
            ray.shutdown()
