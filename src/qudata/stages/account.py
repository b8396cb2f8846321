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

__all__ = ["Account", "account_from_plain", "account_plain", "add_account", "reject_line"]


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
    #: the part files it wrote: kind (a format, ``rejects``) -> digest (resume.file_digest)
    parts: dict[str, str] = field(default_factory=dict)
    recomputed: str | None = None  # why a killed run's record was not taken
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


def account_plain(account: Account) -> dict[str, Any]:
    """``account`` as plain JSON data (its record for ``--resume``)."""
    drops = account.drops
    return {
        "formats": account.formats,
        "read": account.read,
        "accepted": account.accepted,
        "dropped": dict(account.dropped),
        "dropped_tokens": dict(account.dropped_tokens),
        "inputs": account.inputs,
        "seen": {
            "quality_bins": account.seen.quality_bins,
            "unscored": account.seen.unscored,
            "sources": dict(account.seen.sources),
        },
        "drops": {
            "counts": dict(drops.counts),
            "examples": drops.examples,
            "file_examples": [[o, r, e] for (o, r), e in drops.file_examples.items()],
            "rejected": dict(drops.rejected),
            "reasons": {name: dict(c) for name, c in drops.reasons.items()},
        },
        "checks": {name: dict(c) for name, c in account.checks.items()},
        "input_keys": {name: dict(c) for name, c in account.input_keys.items()},
        "mix": [[source, row] for source, row in account.mix.items()],
        "by_format": {name: _format_plain(s) for name, s in account.by_format.items()},
        "feature_state": {
            name: {k: sorted(v) if isinstance(v, set) else bool(v) for k, v in state.items()}
            for name, state in account.feature_state.items()
        },
        "sets": {
            name: [k for k, v in state.items() if isinstance(v, set)]
            for name, state in account.feature_state.items()
        },
    }


def account_from_plain(data: dict[str, Any]) -> Account:
    """The :class:`Account` of :func:`account_plain`; a malformed record raises
    ``KeyError``, ``TypeError`` or ``ValueError`` (the caller computes it again)."""
    account = Account(formats=int(data["formats"]))
    account.read, account.accepted = _int(data["read"]), _int(data["accepted"])
    account.dropped = _counter(data["dropped"])
    account.dropped_tokens = _counter(data["dropped_tokens"])
    account.inputs = [dict(entry) for entry in data["inputs"]]
    for entry in account.inputs:
        if not isinstance(entry.get("path"), str) or not isinstance(entry.get("records"), int):
            raise ValueError("an input entry without path or records")
    seen = data["seen"]
    account.seen.quality_bins = [_int(n) for n in seen["quality_bins"]]
    if len(account.seen.quality_bins) != 20:
        raise ValueError("quality bins")
    account.seen.unscored = _int(seen["unscored"])
    account.seen.sources = _counter(seen["sources"])
    drops, plain = account.drops, data["drops"]
    drops.counts = _counter(plain["counts"])
    drops.examples = {str(k): str(v) for k, v in plain["examples"].items()}
    drops.file_examples = {(str(o), str(r)): str(e) for o, r, e in plain["file_examples"]}
    drops.rejected = _counter(plain["rejected"])
    drops.reasons = {str(k): _counter(v) for k, v in plain["reasons"].items()}
    account.checks = {str(k): _counter(v) for k, v in data["checks"].items()}
    account.input_keys = {str(k): _counter(v) for k, v in data["input_keys"].items()}
    account.mix = {_int(source): [_int(n) for n in row] for source, row in data["mix"]}
    account.by_format = {str(k): _format_from_plain(v) for k, v in data["by_format"].items()}
    sets = data["sets"]
    for name, state in data["feature_state"].items():
        kinds = set(sets.get(name, ()))
        account.feature_state[str(name)] = {
            k: set(v) if k in kinds else bool(v) for k, v in state.items()
        }
    return account


_FORMAT_COUNTERS = ("dropped", "warnings", "dropped_tokens", "sources", "events")


def _format_plain(stats: FormatStats) -> dict[str, Any]:
    """The figures of a format that map 2 counts (its files are the commit's)."""
    plain: dict[str, Any] = {"documents": stats.documents, "records": stats.records}
    for name in _FORMAT_COUNTERS:
        plain[name] = dict(getattr(stats, name))
    return plain


def _format_from_plain(data: dict[str, Any]) -> FormatStats:
    stats = FormatStats(documents=_int(data["documents"]), records=_int(data["records"]))
    for name in _FORMAT_COUNTERS:
        setattr(stats, name, _counter(data[name]))
    return stats


def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, not {type(value).__name__}")
    return value


def _counter(data: Any) -> Counter[str]:
    if not isinstance(data, dict):
        raise TypeError("expected an object of counts")
    return Counter({str(k): _int(v) for k, v in data.items()})
