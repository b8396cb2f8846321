"""Map 1, per partition: read, normalise, check; leave compact keys for the global steps.

What it leaves: the dedup keys of the documents that pass every check (through
:class:`qudata.dedup.step.KeyWriter`), the mix's token counts of the same documents,
and in its :class:`Scan` the partition's metadata schema, its line count (pieces of
a file number their lines on from the pieces before) and the error that stopped its
input, if any. Nothing is accounted here: map 2 reads the partition again and
accounts for every record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from qudata import errors
from qudata.account import Drop
from qudata.config import Config
from qudata.dedup.text import dedup_text
from qudata.errors import InputError
from qudata.io.uri import open_stored
from qudata.models import Document, token_texts
from qudata.normalize.document import DocumentNormalizer
from qudata.pack.registry import FORMATTERS
from qudata.pack.schema import MetadataSchema
from qudata.pause import pause_at
from qudata.plan.job import Job
from qudata.plan.partitions import Partition
from qudata.quality.checks import first_drop
from qudata.quality.verdicts import save_verdicts, start_recording
from qudata.stages.content import file_sums, remote_pieces, spans_of, unchanged
from qudata.stages.context import StageContext, context
from qudata.stages.read import PartitionReader, Unreadable
from qudata.stages.resume import record, take

__all__ = ["Scan", "needs_schema", "passes_checks", "scan_from_plain", "scan_partition"]

BATCH = 512


@dataclass
class Scan:
    """What map 1 learnt of one partition (small: no documents)."""

    lines: int = 0
    read: int = 0  # records, readable or not (for the progress bar)
    schema: dict[str, Any] | None = None
    error: InputError | None = None  # its line counts from the partition's first line
    sha256: str | None = None  # the whole file's, when this is its first piece (local)
    content: list[str] | None = None  # the digest of each file's bytes as read (read_digest)
    pieces: list[str] | None = None  # first piece: the digest of each piece's bytes
    size: int = 0  # first piece: the bytes of the whole file
    derived: dict[str, int] | None = None  # derived ids given out, per base
    verdicts: str | None = None  # the sha256 of its checks' verdicts file (for map 2)
    resumed: bool = False  # taken from a killed run's record
    recomputed: str | None = None  # why a killed run's record was not taken

    def as_plain(self) -> dict[str, Any]:
        """Plain JSON data (its record for ``--resume``)."""
        error = self.error
        return {
            "lines": self.lines,
            "read": self.read,
            "schema": self.schema,
            "error": None
            if error is None
            else {
                "kind": type(error).__name__,
                "detail": error.detail,
                "source": error.source,
                "line": error.line,
                "reason": error.reason,
            },
            "sha256": self.sha256,
            "content": self.content,
            "pieces": self.pieces,
            "size": self.size,
            "derived": self.derived,
            "verdicts": self.verdicts,
        }


def scan_from_plain(data: dict[str, Any]) -> Scan:
    """The :class:`Scan` of :meth:`Scan.as_plain`; a malformed record raises ``KeyError``,
    ``TypeError`` or ``ValueError``."""
    scan = Scan(lines=data["lines"], read=data["read"], sha256=data["sha256"])
    if type(scan.lines) is not int or type(scan.read) is not int:
        raise TypeError("lines and read are integers")
    if scan.sha256 is not None and not isinstance(scan.sha256, str):
        raise TypeError("sha256 is text")
    scan.content = _texts(data["content"])
    scan.pieces = _texts(data["pieces"])
    scan.size = data["size"]
    if type(scan.size) is not int:
        raise TypeError("size is an integer")
    schema = data["schema"]
    if schema is not None:
        MetadataSchema.from_json(schema)  # raises on a malformed schema
        scan.schema = schema
    verdicts = data["verdicts"]
    if verdicts is not None and not isinstance(verdicts, str):
        raise TypeError("verdicts is text")
    scan.verdicts = verdicts
    derived = data["derived"]
    if derived is not None:
        scan.derived = {str(k): int(v) for k, v in derived.items()}
    error = data["error"]
    if error is not None:
        kind = getattr(errors, str(error["kind"]), None)
        if not (isinstance(kind, type) and issubclass(kind, InputError)):
            raise ValueError(f"not an input error: {error['kind']}")
        line = error["line"]
        if line is not None and type(line) is not int:
            raise TypeError("line is an integer")
        scan.error = kind(
            str(error["detail"]),
            source=None if error["source"] is None else str(error["source"]),
            line=line,
            reason=str(error["reason"]),
        )
    return scan


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


def _texts(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of text")
    return value


def scan_partition(job: Job, index: int) -> Scan:
    """Map 1 of partition ``index``."""
    from qudata.dedup.step import KeyWriter, key_files  # numpy: imported when used

    if index == 0:
        pause_at("scan")
    partition = job.partitions[index]
    taken = take(job, "scan", index, scan_from_plain)
    if taken.result is not None:
        done: Scan = taken.result
        if unchanged(job.partitions, partition, done):
            done.resumed = True
            return done
        taken.reason = "its input changed"
    cfg = job.cfg
    ctx = context(job)
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

    checked = keys is not None or mix is not None  # the checks run here too
    if checked:
        start_recording(ctx.checks)
    normalize = DocumentNormalizer.from_input(cfg.input)
    count = _LineCount() if partition.span is not None else None  # lines as they are read
    reader = PartitionReader(cfg, partition, normalize, hash_bytes=True, tee=count)
    finished = False
    try:
        for position, item in reader:  # an error stops its file; a slice's next is read on
            if isinstance(item, Unreadable):
                continue
            if schema is not None:
                schema.observe(item)
            if checked and passes_checks(item, ctx) is None:
                passed.append((position, item))
                if len(passed) >= BATCH:
                    flush()
        scan.read, scan.error = reader.read, reader.error
        scan.content = [file.digest or "" for file in reader.files]  # map 2 reads the same
        flush()  # the documents before an error count too (map 2 reads them again)
        finished = True
    finally:
        if keys is not None:
            keys.close() if finished else keys.abort()  # no file left open on a failure
    if checked:
        scan.verdicts = save_verdicts(ctx.checks, job.part_file("checks", index))
    if mix is not None:
        path = job.part_file("mix", index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(mix))
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
        if remote_pieces(partition):  # its range's sha256 only (see check_remote)
            pass
        elif partition.piece == 0 and partition.span is not None:
            spans = spans_of(job.partitions, partition)
            scan.sha256, scan.pieces, scan.size = file_sums(partition.source.path, spans)
        elif partition.piece == 0:
            scan.sha256 = scan.content[0]  # Parquet: the reader hashed the whole file
    files = key_files(job.dedup_dir, index) if keys is not None else []
    kept = [*files, job.part_file("mix", index), job.part_file("checks", index)]
    record(job, "scan", index, scan.as_plain(), kept)
    scan.recomputed = taken.reason
    return scan


class _LineCount:
    """The lines of a byte range, counted as its bytes are read (a ``digest`` of
    :class:`~qudata.stages.read.PartitionReader`): a remote piece is not fetched again."""

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
