"""Exact dedup over sorted runs: the first copy of each key in input order is kept.

:func:`exact_range` is a pure function of files: the exact records of one key range
from every partition's runs in, the duplicates of that range (each naming the first
copy of its key) out, as a run sorted by the duplicate's reference. Ranges are
independent, so they may run in parallel. :func:`exact_bits` (one call over every
range's output) marks the duplicates in a bit set over all documents, which the near
step reads to leave them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qudata.dedup.files import DUP, EXACT, EXACT_KIND
from qudata.dedup.near import Documents
from qudata.dedup.runs import read_range, write_run

__all__ = ["exact_bits", "exact_range"]


def exact_range(runs: Sequence[Path], lo: int, hi: int | None, out: Path) -> int:
    """Duplicates among the keys in ``[lo, hi)`` written to ``out``; returns their count."""
    records = read_range(runs, EXACT, lo, hi)
    records = records[np.lexsort((records["ref"], records["lo"], records["key"]))]
    first = np.ones(len(records), dtype=bool)
    first[1:] = (records["key"][1:] != records["key"][:-1]) | (
        records["lo"][1:] != records["lo"][:-1]
    )
    # the index of each record's group head: its first copy in input order
    head = np.maximum.accumulate(np.where(first, np.arange(len(records)), 0))
    copies = ~first
    dups = np.empty(int(copies.sum()), DUP)
    dups["key"] = records["ref"][copies]
    dups["kept"] = records["ref"][head[copies]]
    dups["sim"] = 1.0
    dups["kind"] = EXACT_KIND
    write_run(out, dups)
    return len(dups)


def exact_bits(outputs: Sequence[Path], counts: Sequence[int], out: Path) -> int:
    """One bit per document (by global number, in input order), set for the exact
    duplicates of ``outputs``, written to ``out``; returns how many are set. Its memory
    is the bit set and one output at a time."""
    docs = Documents(counts)
    bits = docs.bits()
    total = 0
    for path in outputs:
        numbers = docs.number(np.fromfile(path, dtype=DUP)["key"])
        Documents.set(bits, numbers)
        total += len(numbers)
    bits.tofile(out)
    return total
