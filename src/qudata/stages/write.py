"""Map 2, per partition: read again, account, apply the verdicts, format, write parts.

Every record of the partition ends here: read errors, check drops, duplicates (the
verdicts of the global dedup step), mix down-sampling and format drops go to the
partition's rejects part, in input order; kept documents are formatted, counted,
validated and assigned their split, and their records go to one part file per
format (:class:`~qudata.pack.output.FormatOutput` with a ``part``). What it counted
comes back as a :class:`~qudata.stages.account.Account` for the driver to add up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any, BinaryIO

from qudata.account import Drop
from qudata.dedup import DedupVerdict
from qudata.dedup.text import exact_key
from qudata.export.splits import SplitAssigner
from qudata.models import Document, token_texts
from qudata.normalize.document import DocumentNormalizer
from qudata.pack.output import FormatOutput, count_once
from qudata.pack.registry import get_formatter
from qudata.pack.schema import MetadataSchema
from qudata.pause import pause_at
from qudata.plan.job import Job
from qudata.quality.verdicts import forget_verdicts, load_verdicts
from qudata.stages.account import Account, account_from_plain, account_plain, reject_line
from qudata.stages.context import StageContext, context
from qudata.stages.read import PartitionReader, Unreadable
from qudata.stages.resume import record, take
from qudata.stages.scan import passes_checks

__all__ = ["write_partition"]

BATCH_SIZE = 512
BATCH_CHARS = 1_000_000


def write_partition(job: Job, index: int) -> Account:
    """Map 2 of partition ``index``: its rejects and format parts, and its account."""
    if index == 0:
        pause_at("write")
    taken = take(job, "write", index, account_from_plain, job.content_sha256)
    if taken.result is not None:
        done: Account = taken.result
        done.resumed = True
        done.parts = _kinds(taken.files or {})
        return done
    account = _PartitionWriter(job, index).run()
    kinds = ["rejects", *job.cfg.pack.formats]
    parts = [job.part_file(k, index) for k in kinds]
    files = record(job, "write", index, account_plain(account), parts, job.content_sha256)
    account.parts = _kinds(files)
    account.recomputed = taken.reason
    return account


def _kinds(files: dict[str, str]) -> dict[str, str]:
    """The digest of each part file of a partition, by its kind (its folder)."""
    return {name.split("/", 1)[0]: sha for name, sha in files.items()}


class _PartitionWriter:
    def __init__(self, job: Job, index: int) -> None:
        from qudata.dedup.step import read_verdicts  # numpy: imported when used

        self.job, self.index = job, index
        self.cfg = cfg = job.cfg
        self.ctx: StageContext = context(job)
        self.account = Account(formats=len(cfg.pack.formats))
        self.splitter = SplitAssigner(cfg.output.split, seed=cfg.output.seed)
        self.verdicts: Any = {}
        if cfg.dedup.method != "none":
            self.verdicts = read_verdicts(job.dedup_dir, index)
        self.position = 0
        self.ordinal: dict[int, int] = {}  # id(document) -> its record number, for rejects
        self.pending: list[tuple[int, int, bytes]] = []  # rejects not yet written

    def run(self) -> Account:
        job, cfg, ctx = self.job, self.cfg, self.ctx
        schema = MetadataSchema.from_json(job.schema) if job.schema is not None else None
        formatters = [get_formatter(name, cfg) for name in cfg.pack.formats]
        for formatter in formatters:
            formatter.schema = schema
        path = job.part_file("rejects", self.index)
        path.parent.mkdir(parents=True, exist_ok=True)
        before = [_check_counts(check) for check in ctx.checks]
        recorded = job.verdicts[self.index] if job.verdicts else None
        load_verdicts(ctx.checks, job.part_file("checks", self.index), recorded)
        outputs: list[FormatOutput] = []
        with open(path, "wb") as rejects:
            try:
                for formatter in formatters:
                    part = job.part_file(formatter.name, self.index)
                    outputs.append(
                        FormatOutput(
                            formatter,
                            job.staging,
                            output=cfg.output,
                            counter=ctx.counter,
                            part=part,
                        )
                    )
                self._write(rejects, outputs)
            finally:
                forget_verdicts(ctx.checks)
                for out in outputs:
                    out.close_part()
        for out in outputs:
            self.account.by_format[out.name] = out.stats
            self.account.feature_state[out.name] = _feature_state(out.state)
        for check, counts in zip(ctx.checks, before, strict=True):
            for name, now in _check_counts(check).items():
                was = counts.get(name, Counter())
                delta = Counter({key: value - was.get(key, 0) for key, value in now.items()})
                self.account.checks[f"{check.name}.{name}"] = delta
        return self.account

    def _write(self, rejects: BinaryIO, outputs: list[FormatOutput]) -> None:
        counter = self.ctx.counter
        rank = {out.name: number for number, out in enumerate(outputs, 1)}

        def reject(doc: Document, drop: Drop, fmt: str | None) -> None:
            self.account.drops.add(
                doc.origin, doc.line, drop.reason, drop.detail, fmt=fmt, doc_id=doc.id
            )
            self.pending.append((self.ordinal[id(doc)], rank.get(fmt or "", 0), reject_line(
                fmt, doc.origin, doc.line, doc.id, drop.reason, drop.detail, drop.extra
            )))  # fmt: skip

        for batch in _batched(self._documents()):
            if counter is not None:
                counter.clear()
            kept, copies = self._checks(batch, reject)
            if counter is not None:
                counter.count_batch([t for doc in kept for t in token_texts(doc)])
            self._add_metadata(kept)
            if self.splitter.single:
                splits = [self.splitter.names[0]] * len(kept)
            else:
                splits = [self.splitter.assign(_cluster(doc)) for doc in kept]
            for out in outputs:
                out.write_batch(kept, splits, reject, copies=copies)
            self._flush(rejects)
            self.ordinal.clear()
        self._flush(rejects)

    def _flush(self, rejects: BinaryIO) -> None:
        """The rejects so far, in input order (then format order): the same order for any
        batching and any partitioning."""
        self.pending.sort(key=lambda item: item[:2])
        rejects.writelines(line for _, _, line in self.pending)
        self.pending.clear()

    def _documents(self) -> Iterator[Document]:
        """Readable documents; every other record is counted and rejected."""
        job, account = self.job, self.account
        partition = job.partitions[self.index]
        normalize = DocumentNormalizer.from_input(self.cfg.input, job.derived.get(self.index))
        account.input_keys = normalize.fields.counts  # the field-level account
        if self.index in job.skip:  # an earlier piece of its file could not be read on
            source = partition.sources[0].name
            account.inputs.append({"path": source, "records": 0, "piece": partition.piece})
            return
        reader = PartitionReader(
            self.cfg,
            partition,
            normalize,
            first_line=job.first_lines[self.index] if job.first_lines else 1,
            fail=self.cfg.input.on_error == "fail",
            hash_bytes=True,  # the bytes read: the scan's, or it fails
            expect=job.content[self.index] if job.content else None,
        )
        for _, item in reader:
            if isinstance(item, Unreadable):
                account.dropped[item.reason] += 1
                account.drops.add(item.origin, item.line, item.reason, item.detail, fmt=None)
                self.pending.append((reader.read, 0, reject_line(
                    None, item.origin, item.line, item.row_id, item.reason, item.detail
                )))  # fmt: skip
                continue
            self.ordinal[id(item)] = reader.read
            yield item
        account.read = reader.read
        for read in reader.files:
            entry: dict[str, Any] = {"path": read.name, "records": read.records}
            entry["piece"] = partition.piece
            if read.error is not None:
                entry["failed"] = True
            elif partition.pieces == 1:
                entry["sha256"] = read.digest  # a whole file's: sha256
            account.inputs.append(entry)

    def _checks(self, batch: list[Document], reject: Any) -> tuple[list[Document], list[int]]:
        """Quality, checks, duplicates, the mix; dropped documents leave the account here
        (only documents that pass the checks took part in deduplication)."""
        account, mix, ctx = self.account, self.job.mix, self.ctx
        drops: dict[int, Drop] = {}
        copies: dict[int, int] = {}
        for number, doc in enumerate(batch):
            position = self.position + number
            drop = passes_checks(doc, ctx)
            account.seen.add_score(doc.quality_score)
            if drop is None and self.verdicts:
                verdict: DedupVerdict = self.verdicts[position]
                doc.cluster = verdict.cluster_key
                if verdict.duplicate_of is not None:
                    drop = _duplicate_drop(verdict)
            if drop is None and mix is not None:
                source = self.job.mix_source[doc.origin or ""]
                copies[number] = mix.copies(source, doc.id)
                account.mix_record(source, _mix_tokens(doc, ctx.counter), copies[number])
                if copies[number] == 0:
                    drop = Drop("mix_downsampled", "left out of the mix sample")
            if drop is not None:
                drops[number] = drop
        self.position += len(batch)
        kept = [doc for number, doc in enumerate(batch) if number not in drops]
        for doc in kept:  # documents without a source are charted by their input file
            account.seen.add_source(doc.source or doc.origin)
            account.seen.add_license(doc.metadata)
        dropped = [(batch[number], drops[number]) for number in sorted(drops)]
        if dropped and ctx.counter is not None:
            counts = count_once(ctx.counter, [doc.text for doc, _ in dropped])
            for doc, drop in dropped:
                account.dropped_tokens[drop.reason] += counts[id(doc.text)]
        account.accepted += len(kept)
        for doc, drop in dropped:
            account.dropped[drop.reason] += 1
            reject(doc, drop, None)
        return kept, [copies.get(n, 1) for n in range(len(batch)) if n not in drops]

    def _add_metadata(self, docs: list[Document]) -> None:
        """``output.add_metadata``: computed fields, on request only."""
        wanted = self.cfg.output.add_metadata
        if not wanted:
            return
        counter = self.ctx.counter
        counts = {}
        if counter is not None and "tokens" in wanted:
            counts = count_once(counter, [d.text for d in docs])
        for doc in docs:
            if "chars" in wanted:
                doc.metadata["chars"] = len(doc.text)
            if "words" in wanted:
                doc.metadata["words"] = len(doc.text.split())
            if "tokens" in wanted:
                doc.metadata["tokens"] = counts.get(id(doc.text))


def _cluster(doc: Document) -> str:
    """The duplicate-cluster key that decides the split (exact-text hash without dedup)."""
    if doc.cluster is None:
        doc.cluster = exact_key(doc.text).hex()
    return doc.cluster


def _mix_tokens(doc: Document, counter: Any) -> int:
    """A document's tokens for the mix: its text's, or its messages' contents'."""
    texts = token_texts(doc)
    return sum(counter.count_batch(texts[1:] if doc.messages is not None else texts[:1]))


def _duplicate_drop(verdict: DedupVerdict) -> Drop:
    """The reject of a duplicate; a near duplicate shows its estimated Jaccard similarity."""
    extra: dict[str, Any] = {"duplicate_of": verdict.duplicate_of}
    detail = f"duplicate of {verdict.duplicate_of}"
    if verdict.similarity is not None:
        extra["similarity"] = verdict.similarity
        detail += f" (estimated Jaccard similarity {verdict.similarity:.3f})"
    return Drop(verdict.reason or "duplicate", detail, extra)


def _check_counts(check: Any) -> dict[str, Counter[str]]:
    """A check's counters (its ``warnings``, decontamination's ``dropped`` and
    ``matched``), copied."""
    return {
        name: Counter(getattr(check, name))
        for name in ("warnings", "dropped", "matched")
        if isinstance(getattr(check, name, None), Counter)
    }


def _feature_state(state: dict[str, Any]) -> dict[str, Any]:
    """What a formatter's state says about the features of its records (sets of keys
    and flags; the metadata schema is the job's)."""
    return {k: v for k, v in state.items() if isinstance(v, set | bool)}


def _batched(items: Iterator[Document]) -> Iterator[list[Document]]:
    """Batches of at most BATCH_SIZE documents or about BATCH_CHARS characters of text,
    so memory stays flat when documents are large."""
    batch: list[Document] = []
    chars = 0
    for doc in items:
        batch.append(doc)
        chars += len(doc.text)
        if len(batch) >= BATCH_SIZE or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch
