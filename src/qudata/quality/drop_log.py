"""What the summary says about drops: an example line per reason, files mostly rejected.

A record counts as rejected when it is dropped before formatting (invalid, unknown
shape, quality, duplicate) or by every format written. :meth:`DropLog.notes` are the
lines the summary prints; :meth:`DropLog.nothing_written` the error of a run that
wrote no document at all (``qudata pack`` then exits 1 and publishes nothing).

    >>> log = DropLog(formats=1)
    >>> log.add("a.jsonl", 1, "unknown_shape", "no known shape (keys: q, r)", fmt=None)
    >>> log.top(1)
    [('unknown_shape', 1, 'a.jsonl:1: no known shape (keys: q, r)')]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["INTENDED", "DropLog"]

#: Drops the configuration asks for, not a sign of bad input: a mix's down-sampling
#: leaves most of a large source out on purpose (no "mostly rejected" note for it).
INTENDED = frozenset({"mix_downsampled"})


class DropLog:
    """First example of every drop reason, and the records rejected per input file."""

    def __init__(self, *, formats: int) -> None:
        self.formats = formats
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.file_examples: dict[tuple[str, str], str] = {}
        self.rejected: Counter[str] = Counter()  # input file -> records rejected
        self.reasons: dict[str, Counter[str]] = {}  # input file -> reasons
        self._format_drops: Counter[tuple[str | None, int | None, Any]] = Counter()

    def add(
        self,
        origin: str | None,
        line: int | None,
        reason: str,
        detail: str,
        *,
        fmt: str | None,
        doc_id: Any = None,
    ) -> None:
        self.counts[reason] += 1
        where = f"{origin}:{line}" if line is not None else str(origin)
        self.examples.setdefault(reason, f"{where}: {detail}")
        self.file_examples.setdefault((origin or "<input>", reason), f"{where}: {detail}")
        if fmt is not None:  # rejected once every format dropped it
            key = (origin, line, doc_id)
            self._format_drops[key] += 1
            if self._format_drops[key] < self.formats:
                return
            del self._format_drops[key]
        name = origin or "<input>"
        self.rejected[name] += 1
        self.reasons.setdefault(name, Counter())[reason] += 1

    def top(self, n: int = 3) -> list[tuple[str, int, str]]:
        """The ``n`` most frequent reasons: ``(reason, count, example line)``."""
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:n]
        return [(reason, count, self.examples[reason]) for reason, count in ranked]

    def notes(self, inputs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Lines for the summary: files with over half their records rejected (drops
        the configuration intends, :data:`INTENDED`, left out), and the hint for records
        of no known shape."""
        out = []
        for entry in inputs:
            name, records = str(entry["path"]), int(entry["records"])
            reasons = Counter(
                {r: n for r, n in self.reasons.get(name, {}).items() if r not in INTENDED}
            )
            rejected = sum(reasons.values())
            if records and rejected * 2 > records:
                reason, count = reasons.most_common(1)[0]
                out.append(
                    f"{name}: {rejected:,} of {records:,} records rejected "
                    f"({100 * rejected // records}%), most as {reason} ({count:,}): "
                    f"{self.file_examples[name, reason]}"
                )
        if "unknown_shape" in self.counts:
            out.append(
                f"{self.counts['unknown_shape']:,} records of no known shape: name their "
                "fields with input.columns (e.g. --column prompt=instruction "
                "--column response=output), see README 'Pack your dataset'"
            )
        return out

    def nothing_written(self, read: int) -> str:
        """The one-line error of a run that wrote no document."""
        if not read:
            return "nothing was written: the inputs hold no records"
        reasons = "; ".join(f"{r} {n:,} (e.g. {example})" for r, n, example in self.top())
        hint = ""
        if "unknown_shape" in self.counts:
            hint = "; name the fields with input.columns (e.g. --column prompt=instruction)"
        return (
            f"nothing was written: none of {read:,} records reached an output; "
            f"top reasons: {reasons}{hint}"
        )
