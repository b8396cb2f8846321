"""``qudata stats`` per partition: map 1's reading and checks, the global dedup verdicts,
then a tally of documents and tokens per quality threshold instead of writing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from qudata.models import Document
from qudata.normalize.document import DocumentNormalizer
from qudata.plan.job import Job
from qudata.stages.context import context
from qudata.stages.read import PartitionReader, Unreadable
from qudata.stages.scan import passes_checks

__all__ = ["THRESHOLDS", "Tally", "tally_partition"]

THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class Tally:
    """One partition's figures (sums: partitions add up in any order)."""

    read: int = 0
    invalid: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    unscored: int = 0
    documents: list[int] = field(default_factory=lambda: [0] * len(THRESHOLDS))
    tokens: list[int] = field(default_factory=lambda: [0] * len(THRESHOLDS))

    def add(self, other: Tally) -> None:
        self.read += other.read
        self.invalid += other.invalid
        self.dropped.update(other.dropped)
        self.duplicates.update(other.duplicates)
        self.unscored += other.unscored
        self.documents = [a + b for a, b in zip(self.documents, other.documents, strict=True)]
        self.tokens = [a + b for a, b in zip(self.tokens, other.tokens, strict=True)]


def tally_partition(job: Job, index: int) -> Tally:
    """The documents of partition ``index`` that ``pack`` would keep before its quality
    threshold (``job.cfg`` has none: the tally applies each of THRESHOLDS)."""
    from qudata.dedup.step import read_verdicts  # numpy: imported when used

    cfg, ctx, tally = job.cfg, context(job), Tally()
    verdicts = read_verdicts(job.dedup_dir, index) if cfg.dedup.method != "none" else {}
    normalize = DocumentNormalizer.from_input(cfg.input, job.derived.get(index))
    kept: list[Document] = []
    if index in job.skip:  # an earlier piece of its file could not be read on
        return tally

    def flush() -> None:
        counter = ctx.counter
        counts = [0] * len(kept)
        if counter is not None:
            counter.clear()
            counts = counter.count_batch([d.text for d in kept])
        for doc, n in zip(kept, counts, strict=True):
            if doc.quality_score is None:
                tally.unscored += 1
            for number, threshold in enumerate(THRESHOLDS):
                if doc.quality_score is None or doc.quality_score >= threshold:
                    tally.documents[number] += 1
                    tally.tokens[number] += n
        kept.clear()

    reader = PartitionReader(
        cfg,
        job.partitions[index],
        normalize,
        first_line=job.first_lines[index] if job.first_lines else 1,
        fail=cfg.input.on_error == "fail",
    )
    for position, item in reader:
        if isinstance(item, Unreadable):
            tally.invalid += 1
            continue
        drop = passes_checks(item, ctx)
        if drop is None and verdicts:
            verdict = verdicts[position]
            if verdict.duplicate_of is not None:
                tally.duplicates[verdict.reason or "duplicate"] += 1
                continue
        if drop is not None:
            tally.dropped[drop.reason] += 1
            continue
        kept.append(item)
        if len(kept) >= 512:
            flush()
    tally.read = reader.read
    flush()
    return tally
