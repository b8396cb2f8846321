"""Executors of the partitioned plan: ``local`` (a process pool) and ``ray``.

An executor only schedules the stage calls of :mod:`qudata.stages`
(:class:`qudata.executor.Executor`). Nothing here imports Ray: it is imported when
the Ray engine runs (a missing extra is one line naming ``pip install 'qudata[ray]'``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qudata.config import EngineConfig
from qudata.errors import MissingExtraError, OutputError

if TYPE_CHECKING:
    from qudata.plan.job import Job

__all__ = ["SMALL_INPUT_BYTES", "job_executor", "local_lanes", "make_executor", "ray_engine"]

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


def local_lanes(workers: int | None, input_bytes: int, partitions: int, cpus: int) -> int:
    """The local engine's lanes: ``workers`` (``engine.workers``), else one per CPU, or
    one for an input under :data:`SMALL_INPUT_BYTES`; never more than the partitions."""
    lanes = workers or (1 if input_bytes < SMALL_INPUT_BYTES else cpus)
    return min(lanes, max(1, partitions))


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
    from qudata.engines.spares import end_spares

    if engine.name == "ray":
        executor = ray_engine().RayExecutor(
            engine, staging=staging, storage=storage or {}, prefix=prefix, always=always,
            resume=resume,
        )  # fmt: skip
        end_spares()  # the workers the command line forked ahead: not wanted here
        return executor
    from qudata.engines.local import LocalExecutor, usable_cpus

    lanes = local_lanes(engine.workers, input_bytes, partitions, usable_cpus())
    local = LocalExecutor(lanes)  # takes the spares it needs
    end_spares()  # and the others end now, not with the command
    return local


def job_executor(
    job: Job, where: str, *, unshared: Callable[[str], Exception] | None = None
) -> Any:
    """:func:`make_executor` for ``job`` (its engine, staging and storage options); on Ray
    its staging prefix for the output ``where`` (:func:`~qudata.engines.ray_staging.
    staging_prefix`). A staging folder a node of the cluster does not see raises
    ``unshared(what the node lacks)`` when given, else the engine's own error."""
    from qudata.io.uri import is_uri

    cfg = job.cfg
    prefix = None
    if cfg.engine.name == "ray":  # where the staging goes when the nodes share no folder
        from qudata.engines.ray_staging import staging_prefix

        prefix = staging_prefix(where, cfg.storage.staging)
    try:
        return make_executor(
            cfg.engine, sum(p.size for p in job.partitions), len(job.partitions),
            staging=job.staging, storage=cfg.storage.options, prefix=prefix,
            always=is_uri(cfg.storage.staging or ""), resume=job.resume,
        )  # fmt: skip
    except OutputError as exc:  # Ray: a staging folder some node does not see
        said = str(exc)
        if unshared is None or "Ray cluster: " not in said:
            raise
        raise unshared(said.split("Ray cluster: ", 1)[1].split("; give -o", 1)[0]) from None
