"""Executors of the partitioned plan: ``local`` (a process pool) and ``ray``.

An executor only schedules the stage calls of :mod:`qudata.stages`
(:class:`qudata.executor.Executor`). Nothing here imports Ray: it is imported when
the Ray engine runs (a missing extra is one line naming ``pip install 'qudata[ray]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qudata.config import EngineConfig
from qudata.errors import MissingExtraError

__all__ = ["SMALL_INPUT_BYTES", "make_executor", "ray_engine"]

#: An input smaller than this runs in this process, unless ``engine.workers`` is set.
SMALL_INPUT_BYTES = 4 << 20


def ray_engine() -> Any:
    """The :mod:`qudata.engines.ray` module, or the error naming the extra."""
    try:
        from qudata.engines import ray
    except ImportError as exc:  # Ray, or what it brings, is missing
        if (exc.name or "").split(".")[0] not in ("ray", "numpy", "pyarrow"):
            raise
        raise MissingExtraError("ray", "ray", feature="--engine ray") from None
    return ray


def make_executor(
    engine: EngineConfig,
    input_bytes: int,
    partitions: int,
    *,
    staging: Path | None = None,
    storage: dict[str, dict[str, Any]] | None = None,
    prefix: str | None = None,
    always: bool = False,
    resume: bool = False,
) -> Any:
    """The executor ``engine`` asks for; a small input runs in this process. Ray checks
    that every node sees ``staging`` and sets the ``storage`` options on its workers;
    ``prefix``: an object-storage prefix where Ray keeps the staging when a node does
    not see it (or ``always``; ``resume``: take up what a killed run left there)."""
    if engine.name == "ray":
        return ray_engine().RayExecutor(
            engine, staging=staging, storage=storage or {}, prefix=prefix, always=always,
            resume=resume,
        )  # fmt: skip
    from qudata.engines.local import LocalExecutor, usable_cpus

    workers = engine.workers or usable_cpus()
    if input_bytes < SMALL_INPUT_BYTES and not engine.workers:
        workers = 1
    return LocalExecutor(min(workers, max(1, partitions)))
