"""``--resume``: a stage's result kept beside the part files it wrote, with their sha256.

When a partition's stage completes, its result and the sha256 of each file it left are
recorded in ``.parts/done/<stage>-<partition>.pickle`` (written last, by rename). A
resumed run takes a record only if the run's fingerprint (configuration, partitions,
input sizes and times; of a URI its size and ETag or version) is the one recorded in
``.parts/job.json`` and every file still has its sha256; anything else is computed again.
The commit is never resumed: it consumes the parts, and a partition whose parts it had
consumed is computed again.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

import orjson

from qudata.errors import QudataError
from qudata.io.uri import is_uri, remote_identity
from qudata.plan.job import Job

__all__ = ["fingerprint", "record", "resumed", "start"]


def fingerprint(job: Job, config: dict[str, Any]) -> str:
    """What must not change between a killed run and its resumption."""
    inputs = []
    for partition in job.partitions:
        where = [partition.span, partition.row_groups]
        for source in partition.sources:
            seen: list[Any] = []
            if is_uri(source.path):  # size and ETag / version / generation of the store
                with suppress(QudataError):
                    seen = sorted(remote_identity(source.path).items())
            else:
                with suppress(OSError):
                    stat = os.stat(source.path)
                    seen = [stat.st_size, stat.st_mtime_ns]
            inputs.append([source.name, where, seen])
    data = orjson.dumps({"config": config, "inputs": inputs}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()


def start(job: Job, print_: str) -> bool:
    """Make ``job``'s parts folder ready; ``True`` if it holds a killed run of the same
    job (whose records may be taken), else it is emptied for a fresh start."""
    path = job.parts / "job.json"
    same = path.exists() and orjson.loads(path.read_bytes()).get("fingerprint") == print_
    if not same:
        import shutil

        for child in job.staging.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        job.parts.mkdir(parents=True)
        path.write_bytes(orjson.dumps({"fingerprint": print_}))
    return same


def _path(job: Job, stage: str, index: int) -> Path:
    return job.parts / "done" / f"{stage}-{index:06d}.pickle"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def record(job: Job, stage: str, index: int, result: Any, files: Iterable[Path]) -> None:
    """Keep ``result`` of ``stage`` for partition ``index`` and the sha256 of ``files``."""
    sums = {str(f.relative_to(job.parts)): _sha256(f) for f in files if f.exists()}
    path = _path(job, stage, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_bytes(pickle.dumps((result, sums), protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(temp, path)


def resumed(job: Job, stage: str, index: int) -> Any | None:
    """The recorded result of ``stage`` for partition ``index`` if its files are intact."""
    if not job.resume:
        return None
    path = _path(job, stage, index)
    if not path.exists():
        return None
    result, sums = pickle.loads(path.read_bytes())
    for name, sha in sums.items():
        part = job.parts / name
        if not part.exists() or _sha256(part) != sha:
            return None
    result.resumed = True
    return result
