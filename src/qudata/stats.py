"""``qudata stats`` and ``pack --dry-run``: what survives at several quality thresholds.

Reads the input once, drops invalid records and duplicates as ``pack`` would,
counts each document's tokens, and tallies documents and tokens that a
``min_quality_score`` of each threshold would keep. Writes nothing.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from qudata.config import Config, load_config, parse_size
from qudata.errors import InputError
from qudata.io.readers import RawRecord, read_records
from qudata.io.sources import expand_inputs
from qudata.models import DocumentNormalizer
from qudata.quality.dedup import dedup_text, make_deduplicator
from qudata.quality.tokens import get_token_counter

__all__ = ["THRESHOLDS", "InputStats", "collect_stats"]

THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(slots=True)
class InputStats:
    """Documents and tokens kept at each threshold; unscored documents are kept at every one."""

    tokenizer: str
    tokens_exact: bool
    read: int = 0
    invalid: int = 0
    duplicates: Counter[str] = field(default_factory=Counter)
    unscored: int = 0
    documents: dict[float, int] = field(default_factory=lambda: dict.fromkeys(THRESHOLDS, 0))
    tokens: dict[float, int] = field(default_factory=lambda: dict.fromkeys(THRESHOLDS, 0))

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "invalid": self.invalid,
            "duplicates": dict(sorted(self.duplicates.items())),
            "unscored": self.unscored,
            "tokenizer": self.tokenizer,
            "tokens_exact": self.tokens_exact,
            "thresholds": [
                {"min_quality_score": t, "documents": self.documents[t], "tokens": self.tokens[t]}
                for t in THRESHOLDS
            ],
        }


def collect_stats(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    config: Config | dict[str, Any] | str | None = None,
) -> InputStats:
    """Figures for ``inputs`` under ``config`` (its input, quality and dedup sections)."""
    cfg = load_config(config)
    counter = get_token_counter(cfg.quality.tokenizer)
    dedup = make_deduplicator(
        cfg.dedup.method,
        threshold=cfg.dedup.threshold,
        num_perm=cfg.dedup.num_perm,
        ngram=cfg.dedup.ngram,
    )
    normalize = DocumentNormalizer.from_input(cfg.input)
    result = InputStats(
        tokenizer=counter.name if counter else "none",
        tokens_exact=bool(counter and counter.exact),
    )
    for source in expand_inputs(inputs):
        records = read_records(
            source,
            text_key=cfg.input.text_field,
            id_key=cfg.input.id_field,
            max_line_bytes=parse_size(cfg.input.max_line_bytes),
        )
        while batch := _next_batch(records, result, cfg.input.on_error):
            docs = []
            for raw in batch:
                result.read += 1
                try:
                    if raw.error is not None:
                        raise InputError(raw.error)
                    docs.append(normalize(raw.row, origin=raw.origin, line=raw.line))
                except InputError:
                    result.invalid += 1
            if dedup is not None:
                verdicts = dedup.check_batch([(d.id, dedup_text(d, cfg.dedup.roles)) for d in docs])
                docs = [d for d, v in zip(docs, verdicts, strict=True) if v.duplicate_of is None]
                for v in verdicts:
                    if v.reason is not None:
                        result.duplicates[v.reason] += 1
            counts = counter.count_batch([d.text for d in docs]) if counter else [0] * len(docs)
            for doc, n in zip(docs, counts, strict=True):
                if doc.quality_score is None:
                    result.unscored += 1
                for t in THRESHOLDS:
                    if doc.quality_score is None or doc.quality_score >= t:
                        result.documents[t] += 1
                        result.tokens[t] += n
    if dedup is not None:
        dedup.close()
    return result


def _next_batch(records: Iterator[RawRecord], result: InputStats, on_error: str) -> list[RawRecord]:
    """The next records; an input that cannot be read on counts as one invalid record
    (as a reject of ``pack``), or stops under ``on_error: fail``."""
    batch: list[RawRecord] = []
    try:
        batch.extend(islice(records, 512))
    except InputError:
        if on_error == "fail":
            raise
        result.read += 1
        result.invalid += 1
    return batch
