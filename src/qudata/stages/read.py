"""Read one partition: normalised documents and unreadable records, in input order.

Both maps read each file of a partition through :func:`source_items`, so they see the
same documents at the same positions (a document's position is its ordinal among the
readable documents of the partition: the key of dedup verdicts).
"""

from __future__ import annotations

from collections.abc import Iterator
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

__all__ = ["Unreadable", "source_items"]


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record that is not a document: where it is, its id if it has one, and why."""

    origin: str
    line: int | None
    row_id: Any
    reason: str
    detail: str


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
