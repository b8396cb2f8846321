"""``--resume``: a stage's result kept beside the part files it wrote, with their digests.

When a partition's stage completes, its result (plain JSON data, never anything that
can run code when read) and the digest of each file it left (:func:`file_digest`, the
same the commit checks each part against) are recorded in
``.parts/done/<stage>-<partition>.json``, written last, by rename. The record's first
line is the sha256 of the rest, its JSON body. A resumed run takes a record only if
the run's fingerprint (configuration, partitions, input sizes and times; of a URI its
size and ETag or version) is the one
recorded in ``.parts/job.json``, the record's hash matches its body, it names its own
stage and partition, it parses into the stage's result, and every file it names
still has its digest; anything else is computed again (the summary says so for a
record that did not verify). The commit is never resumed: it consumes the parts,
and a partition whose parts it had consumed is computed again. What a forged record
with a matching hash could still claim is caught by the publish gate
(:mod:`qudata.export.verify`), which reconciles the account with the files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import xxhash

from qudata.errors import QudataError
from qudata.io.hashing import file_hexdigest
from qudata.io.uri import is_uri, remote_identity
from qudata.plan.job import Job

__all__ = ["Taken", "file_digest", "fingerprint", "record", "start", "take"]

T = TypeVar("T")

#: The layout of the parts and records (``-f packed``'s int32 entries, the shuffle's bytes
#: since 2; xxh3-128 digests of the parts and of the pieces of split local files since 3):
#: a killed run of another layout is not taken up.
PARTS_LAYOUT = 3

#: The reasons a record is computed again that the summary names (a record that is
#: simply absent, or whose parts the commit consumed, is computed again silently).
NOT_VERIFIED = "record did not verify"


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
    data = orjson.dumps(
        {"config": config, "inputs": inputs, "parts": PARTS_LAYOUT}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(data).hexdigest()


def start(job: Job, print_: str) -> bool:
    """Make ``job``'s parts folder ready; ``True`` if it holds a killed run of the same
    job (whose records may be taken), else it is emptied for a fresh start."""
    path = job.parts / "job.json"
    same = False
    try:
        if path.is_file() and not path.is_symlink():
            found = orjson.loads(path.read_bytes())
            same = isinstance(found, dict) and found.get("fingerprint") == print_
    except (OSError, orjson.JSONDecodeError):
        same = False
    if not same:
        import shutil

        for child in job.staging.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        job.parts.mkdir(parents=True)
        path.write_bytes(orjson.dumps({"fingerprint": print_}))
    return same


def _path(job: Job, stage: str, index: int) -> Path:
    return job.parts / "done" / f"{stage}-{index:06d}.json"


def file_digest(path: Path) -> str:
    """The xxh3-128 digest of a file of the staging (a part, a dedup key file). It
    tells the file a partition wrote from any other (truncated, left by another run,
    changed): a content hash, at a tenth of sha256's cost. The staging is not a
    boundary against someone who can write to it, who could forge the records that
    name the digests as well: the publish gate reconciles what is published with the
    account (:mod:`qudata.export.verify`), and the published files have their sha256."""
    return file_hexdigest(path, xxhash.xxh3_128())


def record(
    job: Job,
    stage: str,
    index: int,
    result: dict[str, Any],
    files: Iterable[Path],
    given: Any = None,
) -> dict[str, str]:
    """Keep ``result`` (plain data) of ``stage`` for partition ``index`` and the digest
    of those of ``files`` that exist; return those digests by path under the parts.
    ``given``: what the result was computed from (plain data; :func:`take` compares)."""
    sums = {f.relative_to(job.parts).as_posix(): file_digest(f) for f in files if f.exists()}
    body = orjson.dumps(
        {"stage": stage, "partition": index, "given": given, "result": result, "files": sums}
    )
    path = _path(job, stage, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_bytes(hashlib.sha256(body).hexdigest().encode("ascii") + b"\n" + body)
    os.replace(temp, path)
    return sums


@dataclass
class Taken:
    """What a resumed stage gets: the recorded result, or why it computes it again."""

    result: Any = None
    files: dict[str, str] | None = None
    reason: str | None = None  # set: compute again and say so


def take(
    job: Job, stage: str, index: int, parse: Callable[[dict[str, Any]], T], given: Any = None
) -> Taken:
    """The recorded result of ``stage`` for partition ``index`` (``parse`` makes it from
    its plain data) if the record verifies, was computed from ``given``, and its files
    are intact."""
    if not job.resume:
        return Taken()
    path = _path(job, stage, index)
    try:
        if not path.is_file() or path.is_symlink():
            return Taken()
        data = path.read_bytes()
    except OSError:
        return Taken(reason=NOT_VERIFIED)
    head, _, body = data.partition(b"\n")
    if head != hashlib.sha256(body).hexdigest().encode("ascii"):
        return Taken(reason=NOT_VERIFIED)
    try:
        plain = orjson.loads(body)
        if plain["stage"] != stage or plain["partition"] != index:
            return Taken(reason=NOT_VERIFIED)
        sums = {str(k): str(v) for k, v in plain["files"].items()}
        result = parse(plain["result"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return Taken(reason=NOT_VERIFIED)
    if plain.get("given") != given:
        return Taken(reason="its input changed")
    for name, sha in sums.items():
        part = job.parts / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            return Taken(reason=NOT_VERIFIED)
        if not part.is_file():
            return Taken()  # consumed by the commit or the global step: computed again
        if file_digest(part) != sha:
            return Taken(reason="a part file it names changed")
    return Taken(result, sums)
