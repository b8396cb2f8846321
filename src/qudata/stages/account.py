"""The account of one partition, and how the driver adds the accounts up in order.

Every figure of an :class:`Account` is a sum or a first-seen example, so the total
of the partitions' accounts, added in partition order, is what one pass over the
whole input would have counted, whatever ran the partitions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from qudata.account import (
    MAX_LICENSES,
    FormatStats,
    Observations,
    RunReport,
    add_bounded,
)
from qudata.io.limits import bounded, bounded_id
from qudata.normalize.account import add_fields
from qudata.quality.drop_log import DropLog

__all__ = ["Account", "add_account", "reject_line"]


@dataclass
class Account:
    """What map 2 counted in one partition."""

    formats: int
    read: int = 0
    accepted: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    dropped_tokens: Counter[str] = field(default_factory=Counter)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    seen: Observations = field(default_factory=Observations)
    drops: DropLog = field(init=False)
    checks: dict[str, Counter[str]] = field(default_factory=dict)  # "check.counter" -> counts
    mix: dict[int, list[int]] = field(default_factory=dict)  # source -> [docs, tokens, rep, down]
    by_format: dict[str, FormatStats] = field(default_factory=dict)
    feature_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    resumed: bool = False  # taken from a killed run's record
    #: the field-level account: disposition -> input key -> records
    #: (:mod:`qudata.normalize.account`)
    input_keys: dict[str, Counter[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.drops = DropLog(formats=self.formats)

    def mix_record(self, source: int, tokens: int, copies: int) -> None:
        """One document of mix ``source`` written ``copies`` times (0: down-sampled)."""
        row = self.mix.setdefault(source, [0, 0, 0, 0])
        if copies == 0:
            row[3] += 1
            return
        row[0] += 1
        row[1] += tokens * copies
        row[2] += copies - 1


def add_account(report: RunReport, total: Account, part: Account) -> None:
    """Add ``part`` (the next partition in input order) to the run's ``report`` and to
    ``total`` (the drop log, observations, checks, mix and format figures)."""
    report.read += part.read
    report.accepted += part.accepted
    report.dropped.update(part.dropped)
    report.dropped_tokens.update(part.dropped_tokens)
    add_fields(report.input_keys, part.input_keys)
    for entry in part.inputs:
        last = report.inputs[-1] if report.inputs else None
        if entry.get("piece", 0) > 0 and last is not None and last["path"] == entry["path"]:
            last["records"] += entry["records"]
            last["failed"] = last.get("failed", False) or entry.get("failed", False)
        else:
            report.inputs.append(dict(entry))
    _add_drops(total.drops, part.drops)
    _add_seen(total.seen, part.seen)
    for name, counts in part.checks.items():
        total.checks.setdefault(name, Counter()).update(counts)
    for source, row in part.mix.items():
        mine = total.mix.setdefault(source, [0, 0, 0, 0])
        total.mix[source] = [a + b for a, b in zip(mine, row, strict=True)]
    for name, stats in part.by_format.items():
        _add_format(total.by_format.setdefault(name, FormatStats()), stats)
    for name, state in part.feature_state.items():
        mine_state = total.feature_state.setdefault(name, {})
        for key, value in state.items():
            if isinstance(value, set):
                mine_state.setdefault(key, set()).update(value)
            else:
                mine_state[key] = bool(mine_state.get(key, False)) or bool(value)


def _add_drops(total: DropLog, part: DropLog) -> None:
    total.counts.update(part.counts)
    for reason, example in part.examples.items():
        total.examples.setdefault(reason, example)
    for key, example in part.file_examples.items():
        total.file_examples.setdefault(key, example)
    total.rejected.update(part.rejected)
    for name, reasons in part.reasons.items():
        total.reasons.setdefault(name, Counter()).update(reasons)


def _add_seen(total: Observations, part: Observations) -> None:
    total.quality_bins = [a + b for a, b in zip(total.quality_bins, part.quality_bins, strict=True)]
    total.unscored += part.unscored
    for name, count in part.sources.items():
        if name in total.sources or len(total.sources) < total.max_sources:
            total.sources[name] += count
        else:
            total.sources["other"] += count
    for name, count in part.licenses.items():
        add_bounded(total.licenses, name, count, MAX_LICENSES)


def _add_format(total: FormatStats, part: FormatStats) -> None:
    total.documents += part.documents
    total.records += part.records
    total.dropped.update(part.dropped)
    total.warnings.update(part.warnings)
    total.dropped_tokens.update(part.dropped_tokens)
    total.sources.update(part.sources)
    total.events.update(part.events)


def reject_line(
    fmt: str | None,
    origin: str | None,
    line: int | None,
    doc_id: Any,
    reason: str,
    detail: str,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """One line of ``rejects.jsonl``, encoded."""
    entry = {
        "format": fmt,
        "source": origin,
        "line": line,
        "id": bounded_id(doc_id),
        "reason": reason,
        "detail": bounded(detail),
    }
    if extra:
        entry.update(extra)
    return orjson.dumps(entry) + b"\n"
