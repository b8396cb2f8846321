"""One format's output in a run: format, count tokens, validate, write, account.

Documents arrive in batches so token counting runs as one batched call per
batch and format; a text shared by several records (the document text in
JSONL, plain text and the assistant turn) is counted once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qudata.io.writers import AtomicFile
from qudata.models import Document
from qudata.pack.base import Encoder, Formatter, Record
from qudata.quality.report import Drop, FileStats, FormatStats

__all__ = ["FormatOutput", "count_once"]

RejectSink = Callable[[Document, Drop, "str | None"], None]


def count_once(counter: Any, texts: Sequence[str]) -> dict[int, int]:
    """Token counts keyed by ``id(text)``: each distinct string object is counted once."""
    unique: dict[int, str] = {}
    for text in texts:
        unique.setdefault(id(text), text)
    counts = counter.count_batch(list(unique.values()))
    return dict(zip(unique.keys(), counts, strict=True))


class FormatOutput:
    """Writes one format of one run to ``<staging>/<format>/<split>-00000-of-00001<ext>``."""

    def __init__(self, formatter: Formatter[Any], staging: Path, *, split: str, counter: Any) -> None:
        self.formatter = formatter
        self.name = formatter.name
        self.opts = formatter.options
        self.state: dict[str, Any] = {}
        self.stats: FormatStats = formatter.stats
        self.counter = counter
        formatter.counter = counter
        self.limit = formatter.token_limit(self.opts) if counter is not None else None
        self.histogram: Any = None
        if counter is not None:
            from qudata.quality.tokens import TokenHistogram

            self.histogram = TokenHistogram()
        self.encoder: Encoder = formatter.encoder(self.opts)
        relative = f"{self.name}/{split}-00000-of-00001{formatter.extension}"
        self.file = FileStats(path=relative, split=split)
        self.out = AtomicFile(staging / relative)

    def write_batch(self, docs: Sequence[Document], reject: RejectSink) -> None:
        results = [self.formatter.format_document(d, self.opts, self.state) for d in docs]
        counts: dict[int, int] = {}
        if self.counter is not None:
            texts = [
                t
                for doc, res in zip(docs, results, strict=True)
                if not isinstance(res, Drop)
                for rec in res
                for t in self.formatter.token_texts(rec, doc)
            ]
            counts = count_once(self.counter, texts)
        for doc, result in zip(docs, results, strict=True):
            if not isinstance(result, Drop):
                result = self._check(doc, result, counts)
            if isinstance(result, Drop):
                self.stats.dropped[result.reason] += 1
                reject(doc, result, self.name)
                continue
            self._write(doc, result, counts)

    def _check(self, doc: Document, records: list[Record], counts: dict[int, int]) -> list[Record] | Drop:
        problems: list[str] = []
        for record in records:
            problems.extend(self.formatter.validate(record, self.state))
        if problems:
            return Drop("validation", "record fails validation: " + ", ".join(sorted(set(problems))))
        if self.limit is not None:  # the formatter splits or drops; this is the last guard
            for record in records:
                over = [t for t in self.formatter.token_texts(record, doc) if counts[id(t)] > self.limit]
                if over:
                    return Drop("too_long", f"a message has {counts[id(over[0])]} tokens > {self.limit}")
        return records

    def _write(self, doc: Document, records: list[Record], counts: dict[int, int]) -> None:
        for record in records:
            self.out.write(self.encoder.encode(record))
            if self.histogram is not None:
                n = sum(counts[id(t)] for t in self.formatter.token_texts(record, doc))
                self.histogram.add(n)
                self.file.tokens += n
        self.stats.documents += 1
        self.stats.records += len(records)
        self.file.documents += 1
        self.file.records += len(records)

    def close(self) -> None:
        """Finish the file (after the ``with`` block the bytes and sha256 are known)."""
        self.out.write(self.encoder.finish())

    def finalize(self) -> FormatStats:
        self.file.bytes = self.out.bytes_written
        self.file.sha256 = self.out.sha256
        self.stats.bytes = self.file.bytes
        self.stats.files = [self.file]
        self.stats.tokens = self.file.tokens
        return self.stats
