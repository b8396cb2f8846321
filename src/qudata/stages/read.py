"""Read one partition: normalised documents and unreadable records, in input order.

Every stage that reads a partition (map 1's scan, map 2's write, ``stats``' tally)
reads it through :class:`PartitionReader`, so they see the same documents at the same
positions (a document's position is its ordinal among the readable documents of the
partition: the key of dedup verdicts) and count records, errors and bytes alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from qudata.config import Config, parse_size
from qudata.errors import InputError
from qudata.io.limits import too_long
from qudata.io.readers import read_records
from qudata.io.sources import Source
from qudata.io.uri import local_copy
from qudata.models import Document
from qudata.normalize.document import DocumentNormalizer
from qudata.plan.partitions import Partition
from qudata.stages.content import Tee, changed, read_digest

__all__ = ["FileRead", "PartitionReader", "Unreadable", "source_items"]


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record that is not a document: where it is, its id if it has one, and why;
    ``stopped``: the error that stopped reading its file (nothing after it was read)."""

    origin: str | None
    line: int | None
    row_id: Any
    reason: str
    detail: str
    stopped: InputError | None = None


@dataclass(slots=True)
class FileRead:
    """One file of a partition (its piece of it), as it was read."""

    name: str
    records: int = 0  # readable or not, and the error that stopped it
    digest: str | None = None  # of the bytes read, when the reader hashes (content.read_digest)
    error: InputError | None = None  # what stopped it


class PartitionReader:
    """The records of a partition, file after file: iterate for ``(position, item)``,
    ``position`` the ordinal of the next readable document (a document's own); the
    figures (:attr:`read`, :attr:`files`, :attr:`error`) grow as it reads.

    An error that stops a file (one that cannot be read on, or any unreadable record
    under ``input.on_error: fail``) is raised when ``fail``, else it comes as an
    :class:`Unreadable` with ``stopped`` set, and the next file of a slice is read on.
    ``hash_bytes``: the digest of each file's bytes as read (:attr:`FileRead.digest`:
    :func:`~qudata.stages.content.read_digest`, sha256 but for a piece of a split file);
    ``expect``: the ones an earlier read saw (the scan's), a file that differs raises
    :func:`~qudata.stages.content.changed`; ``tee``: another digest fed the same bytes
    (the scan counts a piece's lines with it).
    """

    def __init__(
        self,
        cfg: Config,
        partition: Partition,
        normalize: DocumentNormalizer,
        *,
        first_line: int = 1,
        fail: bool = False,
        hash_bytes: bool = False,
        expect: Sequence[str] | None = None,
        tee: Any = None,
    ) -> None:
        self.cfg, self.partition, self.normalize = cfg, partition, normalize
        self.first_line, self.fail, self.expect, self.tee = first_line, fail, expect, tee
        self.hash = hash_bytes or expect is not None
        self.read = 0  # records, readable or not, and each error that stopped a file
        self.documents = 0  # readable documents
        self.error: InputError | None = None  # the first error that stopped a file
        self.files: list[FileRead] = []

    def __iter__(self) -> Iterator[tuple[int, Document | Unreadable]]:
        for number, source in enumerate(self.partition.sources):  # several: a slice
            read = FileRead(source.name)
            self.files.append(read)
            yield from self._file(source, read)
            if self.expect is not None and read.digest != self.expect[number]:
                raise changed(source.name)  # a partial or other read is never published

    def _file(self, source: Source, read: FileRead) -> Iterator[tuple[int, Document | Unreadable]]:
        digest = read_digest(self.partition) if self.hash else None
        feed = Tee(digest, self.tee) if digest is not None or self.tee is not None else None
        items = source_items(
            self.cfg,
            self.partition,
            source,
            self.normalize,
            first_line=self.first_line,
            digest=feed,
        )
        try:
            for item in items:
                self.read += 1
                read.records += 1
                yield self.documents, item
                if not isinstance(item, Unreadable):
                    self.documents += 1
        except InputError as exc:
            if self.fail:
                raise
            self.read += 1
            read.records += 1
            read.error = exc
            self.error = self.error or exc
            yield (
                self.documents,
                Unreadable(exc.source, exc.line, None, exc.reason, exc.detail, stopped=exc),
            )
        finally:
            if digest is not None:
                read.digest = digest.hexdigest()


def source_items(
    cfg: Config,
    partition: Partition,
    source: Source,
    normalize: DocumentNormalizer,
    *,
    first_line: int = 1,
    digest: Any = None,
) -> Iterator[Document | Unreadable]:
    """The documents and unreadable records of ``source``, one of the partition's files
    (its piece of it); with ``input.on_error: fail`` an unreadable record raises
    :class:`~qudata.errors.InputError`, and an input that cannot be read on raises it in
    any case."""
    icfg = cfg.input
    with local_copy(source, partition.sources) as source:
        for raw in read_records(
            source,
            text_key=icfg.text_field,
            id_key=icfg.id_field,
            digest=digest,
            max_line_bytes=parse_size(icfg.max_line_bytes),
            max_document_chars=icfg.max_document_chars,
            span=partition.span,
            row_groups=partition.row_groups,
            first_line=first_line,
        ):
            reason = raw.reason
            if raw.error is None:
                try:
                    doc = normalize(raw.row, origin=raw.origin, line=raw.line)
                except InputError as exc:
                    detail, reason = exc.detail, exc.reason
                else:
                    long = too_long(doc, icfg.max_document_chars)
                    if long is None:
                        yield doc
                        continue
                    detail, reason = long, "document_too_long"
            else:
                detail = raw.error
            if icfg.on_error == "fail":
                raise InputError(detail, source=raw.origin, line=raw.line, reason=reason)
            row_id = raw.row.get(icfg.id_field) if raw.row else None
            yield Unreadable(raw.origin, raw.line, row_id, reason, detail)
