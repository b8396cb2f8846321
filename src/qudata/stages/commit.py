"""The commit: each format's shards assembled from the partitions' parts, in order.

One call per format (they can run side by side). A format's part files are replayed
partition by partition into its split writers, so shard boundaries follow from the
documents' sizes in input order, never from the partitioning or the workers; the
seeded shuffle, when on, orders each split by the documents' ids as before. Each part
is checked against the digest its partition recorded (:func:`~qudata.stages.resume.file_digest`,
while the part before it is replayed). The rejects' parts are concatenated as they are.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qudata.account import FormatStats
from qudata.errors import IntegrityError
from qudata.io.writers import AtomicFile
from qudata.pack.metadata import MetadataWriter
from qudata.pack.output import FormatOutput
from qudata.pack.registry import get_formatter
from qudata.pack.schema import MetadataSchema
from qudata.pause import pause_at
from qudata.plan.job import Job
from qudata.stages.context import context
from qudata.stages.resume import file_digest

__all__ = ["Committed", "checked_part", "commit_format", "commit_rejects"]


@dataclass
class Committed:
    """One format's files and the figures only the whole output knows."""

    stats: FormatStats
    histograms: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)


def checked_part(job: Job, kind: str, index: int, digest: str | None) -> Path | None:
    """The part file of ``kind`` that partition ``index`` recorded with ``digest`` (None:
    it wrote none); one that is missing or changed is an error, never skipped."""
    if digest is None:
        return None
    part = job.part_file(kind, index)
    what = f"the {kind} part of partition {index} ({part})"
    try:
        found = file_digest(part)
    except FileNotFoundError:
        raise IntegrityError(f"{what} is missing at the commit; nothing was published") from None
    if found != digest:
        raise IntegrityError(
            f"{what} is not the file the partition wrote (its digest differs); "
            "nothing was published"
        )
    return part


def commit_format(
    job: Job, name: str, feature_state: dict[str, Any], parts: list[str | None]
) -> Committed:
    """Write format ``name``'s shards from its parts (``parts``: per partition, the
    digest of the part it recorded, None when it wrote none); ``feature_state``: what
    map 2 learnt of its records' keys (for the card's features)."""
    pause_at("commit")
    cfg = job.cfg
    counter = context(job).counter
    formatter = get_formatter(name, cfg)
    schema = MetadataSchema.from_json(job.schema) if job.schema is not None else None
    formatter.schema = schema
    out = FormatOutput(
        formatter,
        job.staging,
        output=cfg.output,
        counter=counter,
        shuffle_buckets=job.shuffle_buckets,
    )
    # each part is checked (its digest, in a thread: xxhash lets go of the GIL) while
    # the one before it is replayed, on the core the commit would leave idle
    checker = ThreadPoolExecutor(1, thread_name_prefix="qudata-commit-check")
    try:
        checks = [checker.submit(checked_part, job, name, n, sha) for n, sha in enumerate(parts)]
        for index, check in enumerate(checks):
            part = check.result()
            if part is not None:
                try:
                    out.replay(part)
                except (ValueError, TypeError, KeyError) as exc:  # orjson's errors too
                    raise IntegrityError(
                        f"the {name} part of partition {index} ({part}) cannot be read "
                        f"back ({exc}); nothing was published"
                    ) from None
                part.unlink()
        out.state.update({k: set(v) if isinstance(v, set) else v for k, v in feature_state.items()})
        if schema is not None:
            out.state["metadata"] = MetadataWriter(schema=schema)
        stats = out.close()
    except BaseException:
        out.abort()
        raise
    finally:
        checker.shutdown(wait=True, cancel_futures=True)
    if counter is not None:
        if stats.tokenizer == "none":  # a format with its own tokenizer names it itself
            stats.tokenizer, stats.tokens_exact = counter.name, counter.exact
            stats.tokenizer_identity = getattr(
                getattr(counter, "counter", counter), "identity", None
            )
        stats.token_limit_enforced = out.limit is not None
    histograms = {split: h.buckets() for split, h in out.histograms.items()}
    return Committed(stats, histograms)


def commit_rejects(job: Job, parts: list[str | None]) -> None:
    """``rejects.jsonl``: every partition's rejects, in partition order."""
    with AtomicFile(job.staging / "rejects.jsonl") as out:
        for index, digest in enumerate(parts):
            part = checked_part(job, "rejects", index, digest)
            if part is not None:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, _Writer(out), 1 << 20)
                part.unlink()


class _Writer:
    """``AtomicFile`` as a file object for :func:`shutil.copyfileobj`."""

    def __init__(self, out: AtomicFile) -> None:
        self.out = out

    def write(self, data: bytes) -> int:
        self.out.write(data)
        return len(data)
