"""One format's output in a run: format, count tokens, validate, then write by split.

Documents arrive in batches so token counting is one batched call per batch
and format; a string shared by several records (the document text in JSONL,
plain text and the assistant turn) is counted once. Each split goes to its
own shards (``<format>/<split>-NNNNN-of-NNNNN<ext>``), through a disk-backed
shuffle when ``output.shuffle`` is on.

In the partitioned plan the two halves run apart: map 2 formats and checks with a
``part`` file (every kept document's records, one JSON line each, in input order; or a
header line and the bytes of its encoded records, when the writer takes those; or a header
line and each text record's UTF-8 bytes, for plain text), and the
commit :meth:`FormatOutput.replay` s the parts of all partitions, in order,
into the shards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from qudata.account import Drop, FormatStats
from qudata.config import OutputConfig, parse_size
from qudata.export.shuffle import SpillShuffler
from qudata.models import Document
from qudata.pack.base import Formatter, Record
from qudata.quality.checks import first_drop

__all__ = ["FormatOutput", "count_once"]

#: megatron records may be numpy arrays of ids: written as the same JSON lists
_NUMPY = orjson.OPT_SERIALIZE_NUMPY

RejectSink = Callable[[Document, Drop, "str | None"], None]


def count_once(counter: Any, texts: Sequence[str]) -> dict[int, int]:
    """Token counts keyed by ``id(text)``: each distinct string object is counted once."""
    unique: dict[int, str] = {}
    for text in texts:
        unique.setdefault(id(text), text)
    counts = counter.count_batch(list(unique.values()))
    return dict(zip(unique.keys(), counts, strict=True))


class FormatOutput:
    """Writes one format of one run under ``<root>/<format>/``."""

    def __init__(
        self,
        formatter: Formatter[Any],
        root: Path,
        *,
        output: OutputConfig,
        counter: Any,
        shuffle_buckets: int = 64,
        part: Path | None = None,
    ) -> None:
        self.formatter = formatter
        self.name = formatter.name
        self.opts = formatter.options
        self.checks = formatter.format_checks(self.opts)
        self.state: dict[str, Any] = {}
        self.stats: FormatStats = formatter.stats
        self.root = root
        self.output = output
        self.counter = counter
        formatter.counter = counter
        self.limit = formatter.token_limit(self.opts) if counter is not None else None
        self.shuffle_buckets = shuffle_buckets
        self.writers: dict[str, Any] = {}
        self.shufflers: dict[str, SpillShuffler] = {}
        self.histograms: dict[str, Any] = {}
        # JSON Lines through the default writer (or a writer that says it takes encoded
        # records): parts hold the encoded bytes, and the commit copies them (the shuffle
        # orders each document's entry, bytes and all)
        self.raw = formatter.writes_encoded or (
            type(formatter).encoder is Formatter.encoder
            and type(formatter).writer is Formatter.writer
        )
        self._encoder = formatter.encoder(self.opts) if self.raw else None
        # text records: parts hold each record's UTF-8 bytes (no JSON round trip)
        self.text_bytes = formatter.writes_text_bytes
        # rows for Arrow (Parquet): parts hold Arrow IPC batches, made in map 2 (not with
        # the shuffle: a batch's rows are several documents)
        self.arrow = None if output.shuffle else formatter.arrow_schema()
        self._part: BinaryIO | None = None
        if part is not None:
            part.parent.mkdir(parents=True, exist_ok=True)
            self._part = open(part, "wb")  # noqa: SIM115 - closed in close/abort

    def write_batch(
        self,
        docs: Sequence[Document],
        splits: Sequence[str],
        reject: RejectSink,
        *,
        copies: Sequence[int] | None = None,
    ) -> None:
        """Format, count, check and write ``docs``; ``copies``: how often each is written
        (the mix's repeats; a document counts once, its records once per copy)."""
        self.formatter.prepare_batch(docs, self.opts, self.state)
        results = [
            first_drop(self.checks, d) or self.formatter.format_document(d, self.opts, self.state)
            for d in docs
        ]
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
        arrow_docs: list[list[Any]] = []  # split, id, tokens, rows, text size
        arrow_rows: list[Any] = []
        for number, (doc, split, result) in enumerate(zip(docs, splits, results, strict=True)):
            if not isinstance(result, Drop):
                result = self._check(doc, result, counts)
            if isinstance(result, Drop):
                self.stats.dropped[result.reason] += 1
                reject(doc, result, self.name)
                continue
            tokens = [self._tokens(r, doc, counts) for r in result]
            repeat = copies[number] if copies is not None else 1
            if repeat > 1:
                self.stats.events["repeated_records"] += len(result) * (repeat - 1)
                result, tokens = result * repeat, tokens * repeat
            try:
                if self._part is not None and self._encoder is not None:
                    try:
                        data = b"".join([self._encoder.encode(r) for r in result])
                    except UnicodeEncodeError:  # a lone surrogate: orjson's refusal, as
                        orjson.dumps(result)  # a JSON part reports it
                        raise
                    head = orjson.dumps([split, doc.id, tokens, len(data)])
                    self._part.write(head + b"\n" + data)
                elif self._part is not None and self.arrow is not None:
                    orjson.dumps(result)  # what a JSON part refused is refused (dropped) still
                    size = sum(len(r.get("text") or "") for r in result)
                    arrow_docs.append([split, doc.id, tokens, len(result), size])
                    arrow_rows.extend(result)
                elif self._part is not None and self.text_bytes:
                    self._part.write(_text_part(split, doc.id, result, tokens))
                elif self._part is not None:
                    line = orjson.dumps([split, doc.id, result, tokens], option=_NUMPY)
                    self._part.write(line + b"\n")
                elif self.output.shuffle:
                    self._shuffler(split).add(doc.id, [result, tokens])
                else:
                    self._emit(split, result, tokens)
            except (TypeError, ValueError) as exc:  # orjson / UTF-8 refuse lone surrogates, NaN
                drop = Drop("validation", f"record cannot be encoded: {exc}")
                self.stats.dropped[drop.reason] += 1
                reject(doc, drop, self.name)
                continue
            self.stats.documents += 1
            self.stats.records += len(result)
        if self._part is not None and arrow_docs:
            self._part.write(_arrow_part(self.arrow, arrow_docs, arrow_rows))

    def _tokens(self, record: Record, doc: Document, counts: dict[int, int]) -> int:
        known = self.formatter.record_tokens(record)
        if known is not None:
            return known
        return sum(counts.get(id(t), 0) for t in self.formatter.token_texts(record, doc))

    def _check(
        self, doc: Document, records: list[Record], counts: dict[int, int]
    ) -> list[Record] | Drop:
        problems: list[str] = []
        for record in records:
            problems.extend(self.formatter.validate(record, self.state))
        if problems:
            return Drop(
                "validation", "record fails validation: " + ", ".join(sorted(set(problems)))
            )
        if self.limit is not None:  # the formatter splits or drops; this is the last guard
            for record in records:
                over = [
                    t for t in self.formatter.token_texts(record, doc) if counts[id(t)] > self.limit
                ]
                if over:
                    return Drop(
                        "too_long", f"a message has {counts[id(over[0])]} tokens > {self.limit}"
                    )
        return records

    def _emit(self, split: str, records: list[Record], tokens: list[int]) -> None:
        self._writer(split).write_document(records, tokens=sum(tokens))
        self._histogram(split, tokens)

    def _emit_encoded(self, split: str, data: bytes, tokens: list[int]) -> None:
        self._writer(split).write_encoded(data, tokens=tokens)
        self._histogram(split, tokens)

    def _writer(self, split: str) -> Any:
        writer = self.writers.get(split)
        if writer is None:
            writer = self.writers[split] = self.formatter.writer(
                self.root / self.name,
                split,
                relative_to=self.root,
                codec=self.output.compression,
                max_bytes=parse_size(self.output.shard_size) if self.output.shard_size else None,
                max_records=self.output.shard_records,
            )
        return writer

    def _histogram(self, split: str, tokens: list[int]) -> None:
        if self.counter is not None:
            histogram = self.histograms.get(split)
            if histogram is None:
                from qudata.quality.tokens import TokenHistogram

                histogram = self.histograms[split] = TokenHistogram()
            for n in tokens:
                histogram.add(n)

    def _shuffler(self, split: str, *, encoded: bool = False) -> SpillShuffler:
        if split not in self.shufflers:
            self.shufflers[split] = SpillShuffler(
                self.root, seed=self.output.seed, buckets=self.shuffle_buckets, encoded=encoded
            )
        return self.shufflers[split]

    def replay(self, part: Path) -> None:
        """Write the documents of one map-2 part file (the commit, partition by partition)."""
        with open(part, "rb") as handle:
            if self.arrow is not None:
                while line := handle.readline():
                    docs, size = orjson.loads(line)
                    self._replay_rows(docs, handle.read(size))
                return
            if self.raw or self.text_bytes:  # a header line (split, id, tokens, sizes), bytes
                while line := handle.readline():
                    head = orjson.loads(line)
                    data = handle.read(head[3] if self.raw else sum(head[3]))
                    if self.output.shuffle:  # the entry as it is, in its place later
                        self._shuffler(head[0], encoded=True).add(head[1], line + data)
                    else:
                        self._entry(head, data)
                return
            for line in handle:
                split, doc_id, records, tokens = orjson.loads(line)
                if self.output.shuffle:
                    self._shuffler(split).add(doc_id, [records, tokens])
                else:
                    self._emit(split, records, tokens)

    def _entry(self, head: list[Any], data: bytes) -> None:
        """A document's entry of a part: its encoded records, or its text records' bytes."""
        split, _, tokens, size = head
        if self.raw:
            self._emit_encoded(split, data, tokens)
            return
        blocks, at = [], 0
        for length in size:
            blocks.append(data[at : at + length])
            at += length
        self._emit(split, blocks, tokens)

    def _replay_rows(self, docs: list[list[Any]], data: bytes) -> None:
        """One batch of an Arrow part: each document's rows, sliced from the batch's table."""
        from qudata.io.parquet import import_pyarrow

        table = import_pyarrow().ipc.open_stream(data).read_all()
        offset = 0
        for split, _, tokens, rows, size in docs:
            rows_of = table.slice(offset, rows)
            self._writer(split).write_rows(rows_of, size=size, tokens=sum(tokens))
            self._histogram(split, tokens)
            offset += rows
        if offset != table.num_rows:
            raise ValueError(f"{table.num_rows} rows, but the documents have {offset}")

    def close_part(self) -> FormatStats:
        """Map 2's end: the part file complete, the statistics of its documents."""
        if self._part is not None:
            self._part.close()
        return self.stats

    def close(self) -> FormatStats:
        """Replay shuffles, finish every split in the configured order, and fill the stats."""
        for split, shuffler in self.shufflers.items():
            for item in shuffler.replay():
                if shuffler.encoded:  # a part's entry: its header line, then its bytes
                    line, _, data = item.partition(b"\n")
                    self._entry(orjson.loads(line), data)
                else:
                    records, tokens = item
                    self._emit(split, records, tokens)
        files = []
        for split in self.output.split:
            if split in self.writers:
                files.extend(self.writers[split].close())
        self.stats.files = files
        self.stats.features = self.formatter.features(self.state)
        self.stats.bytes = sum(f.bytes for f in files)
        self.stats.tokens = sum(f.tokens for f in files)
        if self.histograms:
            from qudata.quality.tokens import TokenHistogram

            total = TokenHistogram()
            for histogram in self.histograms.values():
                total.merge(histogram)
            self.stats.token_distribution = total.summary()
        return self.stats

    def abort(self) -> None:
        if self._part is not None:
            self._part.close()
        for shuffler in self.shufflers.values():
            shuffler.cleanup()
        for writer in self.writers.values():
            writer.abort()


def _text_part(split: str, doc_id: str, records: list[Any], tokens: list[int]) -> bytes:
    """A document's entry in a part of text records: a header line (split, id, tokens and
    each record's size), then the records' UTF-8 bytes."""
    try:
        blocks = [str(r).encode("utf-8") for r in records]
    except UnicodeEncodeError:  # a lone surrogate: refused as the JSON part refused it
        orjson.dumps(records)
        raise
    head = orjson.dumps([split, doc_id, tokens, [len(b) for b in blocks]])
    return head + b"\n" + b"".join(blocks)


def _arrow_part(schema: Any, docs: list[list[Any]], rows: list[Any]) -> bytes:
    """A batch's entry in an Arrow part: a header line (each document's split, id,
    tokens, row count and text size; the batch's bytes), then its rows as an Arrow IPC
    stream of ``schema``."""
    from qudata.io.parquet import import_pyarrow

    pa = import_pyarrow()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as stream:
        stream.write_table(pa.Table.from_pylist(rows, schema=schema))
    data: bytes = sink.getvalue().to_pybytes()
    return orjson.dumps([docs, len(data)]) + b"\n" + data
