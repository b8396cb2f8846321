"""The Ray executor: ``qudata pack --engine ray`` runs the plan's stage calls as Ray tasks.

The stages are the local engine's own (:mod:`qudata.stages`), so the output is the
same, byte for byte; only the ``run`` section of ``manifest.json`` differs. Each call
is one task: map 1 and map 2 per partition, the commit per format. Tasks read their
partition themselves (a local path every node sees at the same place, or an fsspec
URI, in ranged requests) and write their part files straight into the staging folder,
which must therefore be on a file system every node shares (:func:`check_shared`
checks it before the first task), or else is kept under an object-storage prefix, each
task working in a scratch folder of its node (:mod:`qudata.engines.ray_staging`): when
``storage.staging`` is a URI, or when the output is one and the staging folder is not
shared. A staging folder a node does not see is refused otherwise. The driver never touches
a record: it plans the partitions, resolves duplicates on compact keys, plans the mix
and adds up the partitions' accounts.

Stage calls are idempotent, so Ray runs a task again (:data:`RETRIES` times) when its
worker or node is lost, or when the storage fails; a task that still fails ends the
run with one error naming it (exit 1).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from qudata.config import EngineConfig, parse_size
from qudata.errors import (
    ConfigError,
    MissingExtraError,
    OutputError,
    QudataError,
    StorageError,
    WorkerError,
    error_state,
    rebuild_error,
)
from qudata.io.uri import configure

from .ray_inputs import expand_sources
from .ray_scratch import Sync, mirrored, remove_scratch
from .ray_staging import Mirror

__all__ = ["RETRIES", "RayExecutor", "expand_sources", "ray_session"]

LOCAL_CPUS = 2
LOCAL_OBJECT_STORE = 200 * 1024**2
#: How often a stage task is run again after a system failure (its worker or node
#: lost, its object lost) or a storage error: stage calls are idempotent (they
#: rewrite their own part files).
RETRIES = 3


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", "ray", feature="--engine ray") from None
    return ray


def _test_hold(function: Callable[..., Any]) -> None:
    """A test hook: with ``QUDATA_TEST_HOLD`` naming a folder that holds a file ``armed``
    (empty, or naming a stage function and/or ``node=ID``), the first task (of that
    function, on that node) to get there writes its process id to ``pid`` and sleeps (so
    that a test can kill its worker or its node)."""
    folder = os.environ.get("QUDATA_TEST_HOLD")
    if not folder:
        return
    try:
        with open(os.path.join(folder, "armed"), encoding="utf-8") as armed:
            wanted = armed.read().split()
    except OSError:
        return
    for want in wanted:
        if want.startswith("node="):
            if want[5:] != _import_ray().get_runtime_context().get_node_id():
                return
        elif want != getattr(function, "__name__", ""):
            return
    try:
        fd = os.open(os.path.join(folder, "pid"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    time.sleep(120)


def _call(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    storage: dict[str, Any],
    sync: Sync | None = None,
) -> tuple[bool, Any]:
    """One stage call in a Ray task (``sync``: in a scratch folder, the staging on
    object storage); a qudata error comes back as data, a storage error is raised (Ray
    runs the task again)."""
    configure(storage)
    _test_hold(function)
    try:
        if sync is not None:
            return True, mirrored(function, args, sync)
        return True, function(*args)
    except StorageError:
        raise
    except (QudataError, OSError) as exc:
        return False, error_state(exc)


def _sees(staging: str, token: str, node: str) -> str | None:
    """On one node: ``None`` if it reads the driver's token in ``staging`` and leaves its
    own there, else what failed."""
    hidden = os.environ.get("QUDATA_TEST_HIDE")  # a test hook: a folder this node lacks
    path = os.path.join(staging, ".node-check")
    try:
        if hidden and os.path.abspath(staging).startswith(hidden):
            raise FileNotFoundError(path)
        with open(path, encoding="utf-8") as handle:
            if handle.read() != token:
                return "sees another folder at the same path"
        with open(os.path.join(staging, f".node-{node}"), "w", encoding="utf-8") as out:
            out.write(token)
    except OSError as exc:
        return f"cannot read or write it ({exc.strerror or exc})"
    return None


def _failure(exc: BaseException, function: Callable[..., Any], number: int) -> QudataError:
    """A task that failed for good (retries spent) as one qudata error."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, QudataError):
        return cause
    name = getattr(function, "__name__", "a stage")
    if cause is not None:  # the task raised (not a qudata error): not retried
        what = " ".join(str(cause).split()) or type(cause).__name__
        return WorkerError(f"Ray task {name} of call {number} failed: {what}")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    what = lines[0] if lines else type(exc).__name__
    return WorkerError(
        f"Ray task {name} of call {number} failed after {RETRIES} retries: "
        f"{type(exc).__name__}: {what}"
    )


class RayExecutor:
    """Runs stage calls as Ray tasks (one CPU each), on the cluster of ``engine``;
    ``storage``: the fsspec options set on every worker. ``staging`` must be a folder
    every node sees, unless ``prefix`` (an object-storage prefix) is given: then the
    staging is kept there when ``always`` or when ``staging`` is not shared (``resume``:
    what a killed run left there is taken up)."""

    name = "ray"

    def __init__(
        self,
        engine: EngineConfig,
        *,
        staging: Path | None = None,
        storage: dict[str, Any] | None = None,
        prefix: str | None = None,
        always: bool = False,
        resume: bool = False,
    ) -> None:
        self.mirror: Mirror | None = None
        self._session = ray_session(engine)
        self._session.__enter__()
        try:
            ray = _import_ray()
            self.workers = int(ray.cluster_resources().get("CPU", 1))
            self._storage = storage or {}
            self._remote = ray.remote(
                num_cpus=1, max_retries=RETRIES, retry_exceptions=[StorageError]
            )(_call)
            if staging is not None and prefix is not None and always:
                self.mirror = Mirror(prefix, staging, resume=resume)
            elif staging is not None:
                try:
                    check_shared(staging)
                except OutputError:
                    if prefix is None:
                        raise
                    self.mirror = Mirror(prefix, staging, resume=resume)
        except BaseException:
            self.close()
            raise

    @property
    def files(self) -> Mirror | None:
        """The driver's view of a staging kept on object storage (None: a shared folder)."""
        return self.mirror

    def map(
        self,
        function: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        on_done: Callable[[int, Any], None] | None = None,
        consume: Callable[[Any], None] | None = None,
    ) -> list[Any]:
        """As :meth:`qudata.engines.local.LocalExecutor.map`."""
        ray = _import_ray()
        mirror = self.mirror
        syncs = [None] * len(calls) if mirror is None else _syncs(mirror, function, calls)
        refs: list[Any] = [
            self._remote.remote(function, args, self._storage, sync)
            for args, sync in zip(calls, syncs, strict=True)
        ]
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
                    try:
                        ok, value = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        raise _failure(exc, function, number[ref]) from None
                    if not ok:
                        raise rebuild_error(value)
                    if mirror is not None:
                        value, changes = value
                        mirror.apply(changes)
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
        if self.mirror is not None:
            mirror, self.mirror = self.mirror, None
            try:
                _on_every_node(remove_scratch, mirror.run)
            finally:
                mirror.close()
        self._session.__exit__(None, None, None)


def _syncs(
    mirror: Mirror, function: Callable[..., Any], calls: Sequence[tuple[Any, ...]]
) -> list[Any]:
    """What each call fetches and uploads; a long list that repeats (a dedup step's
    calls all read every partition's ids) is put in Ray's object store once."""
    syncs: list[Any] = []
    last: tuple[Sync, Any] | None = None
    for args in calls:
        sync = mirror.sync_for(function, args)
        if len(sync.fetch) + len(sync.lazy) <= 64:
            syncs.append(sync)
        elif last is not None and last[0] == sync:
            syncs.append(last[1])
        else:
            last = (sync, _import_ray().put(sync))
            syncs.append(last[1])
    return syncs


def _alive_nodes() -> list[dict[str, Any]]:
    return [
        n for n in _import_ray().nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU")
    ]


def _on_every_node(function: Callable[..., Any], *args: Any) -> None:
    """``function(*args)`` once on every node with CPUs (what fails is left alone)."""
    ray = _import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(function)
    refs = [
        task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(*args)
        for n in _alive_nodes()
    ]
    with suppress(Exception):  # a node lost meanwhile: its scratch went with it
        ray.get(refs, timeout=60)


def check_shared(staging: Path) -> None:
    """Refuse (one line) a staging folder that a node of the cluster does not see: its
    part files would be lost. The driver leaves a token there; a task on every node with
    CPUs reads it and leaves its own, which the driver reads back."""
    ray = _import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    check = staging / ".node-check"
    check.write_text(token, encoding="utf-8")
    nodes = _alive_nodes()
    sees = ray.remote(num_cpus=0, max_retries=RETRIES)(_sees)
    try:
        refs = [
            sees.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(str(staging), token, n["NodeID"])
            for n in nodes
        ]
        for node, problem in zip(nodes, ray.get(refs), strict=True):
            mark = staging / f".node-{node['NodeID']}"
            if problem is None and not mark.exists():
                problem = "writes where this machine does not see it"
            mark.unlink(missing_ok=True)
            if problem is not None:
                where = f"{node.get('NodeManagerAddress', '?')} ({node['NodeID'][:12]})"
                raise OutputError(
                    f"{staging.parent}: the output folder is not shared by the nodes of the "
                    f"Ray cluster: node {where} {problem}; give -o a folder that every "
                    "node mounts at the same path (NFS, a shared volume), or stage through "
                    "object storage (storage.staging: s3://bucket/tmp)"
                )
    finally:
        check.unlink(missing_ok=True)
        for node in nodes:  # those after a node that failed too
            (staging / f".node-{node['NodeID']}").unlink(missing_ok=True)


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
