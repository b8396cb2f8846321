"""The inputs' content: what the scan read, so that the write pass and ``--resume`` can
tell whether the bytes are still the same.

The scan hashes the stored bytes of each file of a partition as it reads them (its
byte range for a piece of a JSON Lines file); map 2 hashes what it reads and compares;
``--resume`` takes a partition's scan only when its bytes hash the same now
(:func:`unchanged`). A file that changed while the run read it fails the run with one
line naming it. The hash is sha256 where the manifest gives it (a whole file, the range
of a split remote file), and xxh3-128 for the range of a split local file
(:func:`read_digest`), which only ties the passes together, at a tenth of the cost.

The pieces of a split local file are tied together by one more read: the first piece
also hashes the whole file (the sha256 the manifest gives) and each piece's range, and
the driver checks every piece against it (:func:`check_pieces`). A split remote file is
not fetched a third time for it: the manifest gives the sha256 of each piece's range
instead of the whole file's. The store's identity of every remote input (size and ETag,
version id or generation, from the listing the run started from) is asked again after
the write pass, and must not have changed (:func:`check_remote`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import Any

import xxhash

from qudata.errors import IntegrityError, QudataError
from qudata.io.hashing import file_hexdigest
from qudata.io.uri import current_identities, is_uri, open_stored, remote_identity
from qudata.plan.partitions import Partition

__all__ = [
    "PIECE_DIGEST",
    "Tee",
    "changed",
    "check_pieces",
    "check_remote",
    "file_sums",
    "read_digest",
    "remote_pieces",
    "spans_of",
    "unchanged",
]

_CHUNK = 1 << 22
#: The digest of a byte range of a split local file, in both passes, in the first
#: piece's whole-file read and in ``--resume``'s check (they must agree).
PIECE_DIGEST = xxhash.xxh3_128
#: What identifies a remote object's bytes (with its size), when the store gives it.
_VERSIONS = {"etag", "version_id", "generation", "md5_hash", "blob_id"}


class Tee:
    """Several digests fed the same bytes (``None`` ones are left out)."""

    def __init__(self, *digests: Any) -> None:
        self.digests = [d for d in digests if d is not None]

    def update(self, chunk: bytes) -> None:
        for digest in self.digests:
            digest.update(chunk)


def changed(name: str) -> IntegrityError:
    """The error of an input whose bytes are not the ones the run read before."""
    return IntegrityError(f"{name}: changed while the run read it; nothing was published")


def read_digest(partition: Partition) -> Any:
    """The digest both passes take of ``partition``'s bytes as they read them: xxh3-128
    for a byte range of a split local file (the manifest gives the whole file's sha256,
    from :func:`file_sums`), else sha256 (the manifest gives it)."""
    if partition.pieces > 1 and partition.span is not None and not is_uri(partition.source.path):
        return PIECE_DIGEST()
    return hashlib.sha256()


def file_sums(path: str, spans: Sequence[tuple[int, int]]) -> tuple[str, list[str], int]:
    """In one read of ``path``: the sha256 of the whole file, the :func:`read_digest` of
    each of ``spans`` (consecutive byte ranges from 0: a split local file's pieces), and
    the bytes read."""
    whole = hashlib.sha256()
    sums: list[str] = []
    size = 0
    with open_stored(path) as handle:  # a local path or a URI
        for start, end in spans:
            piece = PIECE_DIGEST()
            left = end - start
            while left > 0 and (chunk := handle.read(min(left, _CHUNK))):
                whole.update(chunk)
                piece.update(chunk)
                left -= len(chunk)
                size += len(chunk)
            sums.append(piece.hexdigest())
        while chunk := handle.read(_CHUNK):  # bytes after the last range: it grew
            whole.update(chunk)
            size += len(chunk)
    return whole.hexdigest(), sums, size


def spans_of(partitions: Sequence[Partition], first: Partition) -> list[tuple[int, int]]:
    """The byte ranges of the pieces of ``first``'s file, in order."""
    return [
        p.span for p in partitions[first.index : first.index + first.pieces] if p.span is not None
    ]


def check_pieces(partitions: Sequence[Partition], scans: Sequence[Any]) -> None:
    """Every piece of a split file read the bytes the whole-file read of its first piece
    saw, and the file is the size it was cut at; else the file changed mid-run. A piece
    whose scan stopped at an error read only part of its bytes: map 2 checks that it
    reads the same part. A split remote file has no whole-file read: see
    :func:`check_remote`."""
    for partition, scan in zip(partitions, scans, strict=True):
        if partition.pieces < 2 or remote_pieces(partition):
            continue
        first = scans[partition.index - partition.piece]
        name = partition.source.name
        if partition.span is None:  # Parquet: each piece hashed the whole file
            if scan.content != [first.sha256]:
                raise changed(name)
            continue
        if first.pieces is None or len(first.pieces) != partition.pieces:
            raise changed(name)
        if scan.error is None and scan.content != [first.pieces[partition.piece]]:
            raise changed(name)
        if partition.piece == partition.pieces - 1 and first.size != partition.span[1]:
            raise changed(name)


def remote_pieces(partition: Partition) -> bool:
    """A byte range of a remote file (hashed piece by piece, never whole)."""
    return partition.span is not None and is_uri(partition.source.path)


def check_remote(partitions: Sequence[Partition], failed: Collection[str] = ()) -> None:
    """Each remote input is still the object its listing gave when the run started: its
    size, and its ETag, version id or generation where both the listing and the store
    now give them (no bytes: :func:`~qudata.io.uri.current_identities` makes the
    run's listings again, or asks for a file's metadata). With the comparison of each
    file's (each range's) sha256 between the passes, the bytes published are those of
    the object the manifest names (short of an object rewritten and put back with the
    same ETag during the run); a file grown after its listing is found too.
    ``failed``: the names of inputs an error stopped (reported as such, not checked)."""
    uris: dict[str, str] = {}  # each remote input read -> its name
    for partition in partitions:
        for source in partition.sources:
            if is_uri(source.path) and source.problem is None and source.name not in failed:
                uris.setdefault(source.path, source.name)
    if not uris:
        return
    now = current_identities(uris)
    for uri, name in uris.items():
        before, current = remote_identity(uri), now.get(uri, {})
        shared = set(before) & set(current)
        if "size" not in shared or any(before[key] != current[key] for key in shared):
            raise changed(name)


def unchanged(partitions: Sequence[Partition], partition: Partition, scan: Any) -> bool:
    """The bytes ``scan`` (a killed run's) read are the bytes there now. A remote input
    is not downloaded again: its size and its ETag, version or generation, part of the
    run's fingerprint, stand for its bytes (a store that gives none of them is scanned
    again)."""
    if scan.content is None or len(scan.content) != len(partition.sources):
        return False
    for source, recorded in zip(partition.sources, scan.content, strict=True):
        if source.path == "-":
            return False
        if is_uri(source.path):
            try:
                identity = remote_identity(source.path)
            except QudataError:
                return False
            if not set(identity) & _VERSIONS:
                return False
            continue
        try:
            if partition.span is not None:
                spans = [partition.span]
                if partition.piece == 0:  # it holds the whole file's sums too
                    spans = spans_of(partitions, partition)
                    whole, sums, size = file_sums(source.path, spans)
                    if (whole, sums, size) != (scan.sha256, scan.pieces, scan.size):
                        return False
                    found = sums[0]
                else:
                    found = file_hexdigest(source.path, PIECE_DIGEST(), partition.span)
            else:
                found = file_sums(source.path, [])[0]
        except OSError:
            return False
        if found != recorded:
            return False
    return True
