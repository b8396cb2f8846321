"""The manifest's ``inputs``: one entry per input file, what it is and what was read of it.

Every entry has the file's ``path`` (its name in the run), its ``records`` (readable or
not) and its ``sha256`` (``null`` when an error stopped it). A local file's entry is
that and nothing more, the sha256 of the whole file. A remote input's (an fsspec URI)
adds what the store identifies the object by, from the listing the run started from:
its ``size`` and its ``etag``, ``version_id``, ``generation``, ``md5_hash`` or
``blob_id`` (what the store gives; ``mtime`` for a ``file://`` URI), never a
credential. A remote JSON Lines file cut into byte ranges is not fetched a third time
to hash it whole: its ``sha256`` is ``null`` and ``pieces`` gives the sha256 of each
range as both passes read it, in order (``{"start", "end", "sha256"}``, from 0 to
``size``); anyone can check them with ranged reads, one range at a time.

    {"path": "s3://b/big.jsonl", "sha256": null, "records": 6015, "size": 1048576,
     "etag": "\\"9b2c...\\"", "pieces": [{"start": 0, "end": 262201, "sha256": "5d1f..."},
     ...]}

:func:`input_entries` makes them from the write pass's account and the scans;
:func:`input_problem` is what the publish gate checks of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from qudata.io.uri import is_uri, remote_identity
from qudata.plan.partitions import Partition

__all__ = ["input_entries", "input_problem"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


def input_entries(
    entries: list[dict[str, Any]], partitions: Sequence[Partition], scans: Sequence[Any]
) -> list[dict[str, Any]]:
    """The manifest's entries from the write pass's (``path``, ``records``, ``sha256``
    of a whole-file read, ``failed``) and the scans (the whole-file sha256 of a split
    local file; the sha256 of each range of a split remote one)."""
    first_sha: dict[str, str | None] = {}
    pieces: dict[str, list[dict[str, Any]]] = {}
    uris: dict[str, str] = {}  # an entry's name -> its URI
    for partition, scan in zip(partitions, scans, strict=True):
        for source in partition.sources:
            if is_uri(source.path):
                uris.setdefault(source.name, source.path)
        if partition.pieces < 2:
            continue
        name = partition.source.name
        if partition.span is not None and is_uri(partition.source.path):
            start, end = partition.span
            sha = scan.content[0] if scan.content else None
            pieces.setdefault(name, []).append({"start": start, "end": end, "sha256": sha})
        elif partition.piece == 0:
            first_sha[name] = scan.sha256
    out = []
    for entry in entries:
        path = entry["path"]
        sha = None if entry.get("failed") else entry.get("sha256", first_sha.get(path))
        made: dict[str, Any] = {"path": path, "sha256": sha, "records": entry["records"]}
        uri = uris.get(path)
        if uri is not None:
            made.update(remote_identity(uri))
            if path in pieces and not entry.get("failed"):
                made["pieces"] = pieces[path]
        out.append(made)
    return out


def input_problem(entries: Any) -> str | None:
    """What is wrong with the manifest's ``inputs`` (``None``: nothing): an entry
    without a path or a record count, a sha256 that is not one, pieces that do not
    cover the file's size from 0 in order."""
    if not isinstance(entries, list):
        return "its inputs are not a list"
    for entry in entries:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str):
            return "an input entry without a path"
        records = entry.get("records")
        if type(records) is not int or records < 0:
            return f"input {path}: its records are not a count"
        sha = entry.get("sha256")
        if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
            return f"input {path}: its sha256 is not one"
        size = entry.get("size")
        if "size" in entry and (type(size) is not int or size < 0):
            return f"input {path}: its size is not a byte count"
        if "pieces" in entry:
            problem = _pieces_problem(entry["pieces"], size)
            if problem is not None:
                return f"input {path}: {problem}"
    return None


def _pieces_problem(pieces: Any, size: Any) -> str | None:
    if not isinstance(pieces, list) or not pieces:
        return "its pieces are not a list of byte ranges"
    at = 0
    for piece in pieces:
        if not isinstance(piece, dict):
            return "its pieces are not a list of byte ranges"
        start, end, sha = piece.get("start"), piece.get("end"), piece.get("sha256")
        if type(start) is not int or start != at or type(end) is not int or end <= at:
            return f"its pieces do not follow each other from byte 0 (at byte {at:,})"
        if not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
            return f"the piece at byte {at:,} has no sha256"
        at = end
    if at != size:
        return f"its pieces end at byte {at:,}, its size is {size}"
    return None
