"""One record as a reader yields it: where it is, and its row or why it is bad."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BOM", "RawRecord"]

#: A UTF-8 byte order mark: skipped at the start of a JSONL, JSON or text file.
BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class RawRecord:
    """One input record: where it is (``origin``, ``line``) and its row, or why it is bad.

    ``line`` is the 1-based line for JSONL, the 1-based item for JSON arrays and
    the 1-based row for Parquet. ``reason`` is the reject reason of a bad record.
    """

    origin: str
    line: int
    row: dict[str, Any] | None
    error: str | None = None
    reason: str = "invalid"
