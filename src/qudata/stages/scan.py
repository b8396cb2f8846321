"""Map 1, per partition: read, normalise, check; leave compact keys for the global steps.

What it leaves: the dedup keys of the documents that pass every check (through
:class:`qudata.dedup.step.KeyWriter`), the mix's token counts of the same documents,
and in its :class:`Scan` the partition's metadata schema, its line count (pieces of
a file number their lines on from the pieces before) and the error that stopped its
input, if any. Nothing is accounted here: map 2 reads the partition again and
accounts for every record.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from typing import Any

from qudata.account import Drop
from qudata.config import Config
from qudata.dedup.text import dedup_text
from qudata.errors import InputError
from qudata.io.uri import open_stored
from qudata.models import Document, token_texts
from qudata.normalize.document import DocumentNormalizer
from qudata.pack.registry import FORMATTERS
from qudata.pack.schema import MetadataSchema
from qudata.plan.job import Job
from qudata.plan.partitions import Partition
from qudata.quality.checks import first_drop
from qudata.stages.context import StageContext, context
from qudata.stages.read import Unreadable, source_items
from qudata.stages.resume import record, resumed

__all__ = ["Scan", "needs_schema", "passes_checks", "scan_partition"]

BATCH = 512


@dataclass
class Scan:
    """What map 1 learnt of one partition (small: no documents)."""

    lines: int = 0
    read: int = 0  # records, readable or not (for the progress bar)
    schema: dict[str, Any] | None = None
    error: InputError | None = None  # its line counts from the partition's first line
    sha256: str | None = None  # the whole file's, when this partition is its first piece
    derived: dict[str, int] | None = None  # derived ids given out, per base
    resumed: bool = False  # taken from a killed run's record


def needs_schema(cfg: Config) -> bool:
    """Whether a format of the run learns the metadata schema in this pass (the
    registry's :meth:`~qudata.pack.base.Formatter.surveys_metadata`)."""
    return any(
        FORMATTERS[name].surveys_metadata(cfg.pack.options(name)) for name in cfg.pack.formats
    )


def passes_checks(doc: Document, ctx: StageContext) -> Drop | None:
    """The first :class:`~qudata.account.Drop` of the run's checks (quality gate
    first), or ``None``: for every stage and executor."""
    return first_drop(ctx.checks, doc)


def scan_partition(job: Job, index: int) -> Scan:
    """Map 1 of partition ``index``."""
    from qudata.dedup.step import KeyWriter, key_files  # numpy: imported when used

    done = resumed(job, "scan", index)
    if done is not None:
        return done  # type: ignore[no-any-return]
    cfg = job.cfg
    ctx = context(job)
    partition = job.partitions[index]
    scan = Scan()
    schema = MetadataSchema() if needs_schema(cfg) else None
    keys = KeyWriter(job.dedup_dir, index, cfg.dedup) if cfg.dedup.method != "none" else None
    mix: list[tuple[int, int, str, int]] | None = [] if cfg.mix is not None else None
    passed: list[tuple[int, Document]] = []

    def flush() -> None:
        if keys is not None:
            keys.add_batch([(n, d.id, dedup_text(d, cfg.dedup.roles)) for n, d in passed])
        if mix is not None:
            assert ctx.counter is not None  # mix requires a tokenizer
            ctx.counter.clear()
            for n, d in passed:
                texts = token_texts(d)
                used = texts[1:] if d.messages is not None else texts[:1]
                tokens = sum(ctx.counter.count_batch(used))
                mix.append((n, job.mix_source[d.origin or ""], d.id, tokens))
        passed.clear()

    position = 0
    normalize = DocumentNormalizer.from_input(cfg.input)
    count = _LineCount() if partition.span is not None else None  # lines as they are read
    for source in partition.sources:  # one, but for a slice of text files
        try:
            for item in source_items(cfg, partition, source, normalize, digest=count):
                scan.read += 1
                if isinstance(item, Unreadable):
                    continue
                if schema is not None:
                    schema.observe(item)
                if (keys is not None or mix is not None) and passes_checks(item, ctx) is None:
                    passed.append((position, item))
                    if len(passed) >= BATCH:
                        flush()
                position += 1
        except InputError as exc:  # the first; a slice's next file is read on
            scan.error = scan.error or exc
    flush()  # the documents before an error count too (map 2 reads them again)
    if keys is not None:
        keys.close()
    if mix is not None:
        path = job.part_file("mix", index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(mix, protocol=pickle.HIGHEST_PROTOCOL))
    if schema is not None:
        scan.schema = schema.to_json()
    scan.derived = normalize.derived or None
    if partition.pieces > 1:  # map 2 hashes whole files as it reads them
        read_all = (
            count is not None
            and partition.span is not None
            and (count.stored == partition.span[1] - partition.span[0])
        )
        scan.lines = count.lines() if count is not None and read_all else _lines(partition)
        if partition.piece == 0:
            scan.sha256 = _file_sha256(partition.source.path)
    files = key_files(job.dedup_dir, index) if keys is not None else []
    record(job, "scan", index, scan, [*files, job.part_file("mix", index)])
    return scan


class _LineCount:
    """The lines of a byte range, counted as its bytes are read (a ``digest`` of
    :func:`~qudata.stages.read.source_items`): a remote piece is not fetched again."""

    def __init__(self) -> None:
        self.stored = 0
        self.newlines = 0
        self.last = b""

    def update(self, chunk: bytes) -> None:
        if chunk:
            self.stored += len(chunk)
            self.newlines += chunk.count(b"\n")
            self.last = chunk[-1:]

    def lines(self) -> int:
        return self.newlines + (1 if self.last not in (b"", b"\n") else 0)


def _lines(partition: Partition) -> int:
    """The lines of a piece of a file (its last line may have no newline), or the rows
    of a run of Parquet row groups."""
    if partition.row_groups is not None:
        return partition.rows  # counted when the file was cut
    assert partition.span is not None
    start, end = partition.span
    count, last = 0, b""
    with open_stored(partition.source.path, (start, end)) as handle:
        left = end - start
        while left > 0:
            chunk = handle.read(min(left, 1 << 22))
            if not chunk:
                break
            count += chunk.count(b"\n")
            left -= len(chunk)
            last = chunk[-1:]
    return count + (1 if last not in (b"", b"\n") else 0)


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open_stored(path) as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
