"""The field-level account: what became of every top-level key of every input record.

Each key of a record is one of:

- ``mapped``: read into what the record means (its text, id, messages, tools, a
  preference pair, a KTO label, media references, a known metadata key, ...);
- ``carried``: kept with its value in the document's ``metadata`` (written by JSONL
  and Parquet, and by ChatML and preference with ``include_metadata``);
- ``dropped``: read by nothing and kept nowhere (a second conversation beside the one
  read, say), always named here.

``input.unknown_keys`` says what a key that is not mapped does: ``carry`` (the
default: carried and counted), ``warn`` (carried, and each such key is a caution in
the printed summary) or ``fail`` (the record is rejected as ``unknown_key``, naming
the keys). Keys are counted by their names in the input file (before
``input.columns`` renames them).

    >>> account = FieldAccount()
    >>> account.add({"text": "mapped", "category": "carried"})
    >>> account.as_dict()
    {'mapped': {'text': 1}, 'carried': {'category': 1}, 'dropped': {}}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "DISPOSITIONS",
    "FieldAccount",
    "add_fields",
    "describe",
    "input_cautions",
    "missing_columns",
]

DISPOSITIONS = ("mapped", "carried", "dropped")


@dataclass
class FieldAccount:
    """Counts per disposition and key (a plain dict of counters: it travels between
    processes and adds up in any order)."""

    counts: dict[str, Counter[str]] = field(
        default_factory=lambda: {name: Counter() for name in DISPOSITIONS}
    )

    def add(self, dispositions: Mapping[str, str]) -> None:
        """One record: key -> disposition."""
        for key, disposition in dispositions.items():
            self.counts[disposition][key] += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {name: dict(sorted(self.counts[name].items())) for name in DISPOSITIONS}


def add_fields(total: dict[str, Counter[str]], part: Mapping[str, Mapping[str, int]]) -> None:
    """Add one partition's counts to ``total``."""
    for name, counts in part.items():
        total.setdefault(name, Counter()).update(counts)


def missing_columns(columns: Mapping[str, str], seen: Mapping[str, Mapping[str, int]]) -> list[str]:
    """``input.columns`` entries naming a key that no record had."""
    present = {key for counts in seen.values() for key in counts}
    return [f"{name}={key}" for name, key in columns.items() if key not in present]


def describe(counts: Mapping[str, Mapping[str, int]], *, limit: int = 12) -> str:
    """One line: ``mapped: messages 300, label 300; carried: category 15,011``."""
    out = []
    for name in DISPOSITIONS:
        keys = sorted(counts.get(name, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        if keys:
            shown = ", ".join(f"{key} {n:,}" for key, n in keys[:limit])
            more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
            out.append(f"{name}: {shown}{more}")
    return "; ".join(out)


def input_cautions(
    input_cfg: Mapping[str, object], seen: Mapping[str, Mapping[str, int]]
) -> list[str]:
    """What the printed summary warns about the input's keys: ``input.columns`` entries
    that no record had, and (``unknown_keys: warn``) every key carried unmapped."""
    out = []
    columns = input_cfg.get("columns") or {}
    if isinstance(columns, Mapping):
        for entry in missing_columns(columns, seen):
            out.append(f"input.columns {entry}: no record has the key {entry.split('=', 1)[1]!r}")
    if input_cfg.get("unknown_keys") == "warn":
        for key, count in sorted(seen.get("carried", {}).items()):
            out.append(
                f"input key {key!r} ({count:,} records) is not mapped: carried in metadata "
                "(written by jsonl and parquet, and by chatml/preference with include_metadata)"
            )
    return out
