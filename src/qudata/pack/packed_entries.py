"""The binary entries of ``-f packed``: sequences as int32 ids, with a small JSON head.

An entry is a 4-byte little-endian size, a JSON head (``[doc, length, spans]`` per
segment; ``spans`` null for a plain document's tokens), then the segments' ids as
little-endian int32. Map 2's parts hold one entry per record (:class:`SequenceEncoder`),
and the writer's spill one per packed sequence: the commit reads ids with
:func:`numpy.frombuffer`, never as lists of Python ints or JSON.

    >>> import numpy as np
    >>> data = entry([["d1", 3, [[1, 3]]]], [np.array([5, 6, 7])])
    >>> [(doc, ids.tolist(), spans) for doc, ids, spans in segments_of(data)]
    [('d1', [5, 6, 7], [[1, 3]])]
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

from qudata.pack.base import Encoder, Record

__all__ = ["SequenceEncoder", "entry", "next_entry", "segments_of"]

#: the size of an entry's head
_HEAD = struct.Struct("<I")


class SequenceEncoder(Encoder):
    """A record as an entry: map 2's parts hold its ids as int32 bytes, and the commit
    hands them to the writer's ``write_encoded`` (no list of Python ints, no JSON)."""

    def encode(self, record: Record) -> bytes:
        import numpy as np

        ids = np.asarray(record["ids"], dtype="<i4")
        return entry([[record["doc"], len(ids), record.get("spans")]], [ids])


def entry(heads: list[list[Any]], ids: list[Any]) -> bytes:
    """An entry: ``heads`` (``[doc, length, spans]`` each), then each one's ``ids``."""
    head = orjson.dumps(heads)
    blocks = (i.astype("<i4", copy=False).tobytes() for i in ids)
    return b"".join([_HEAD.pack(len(head)), head, *blocks])


def next_entry(data: bytes, at: int) -> tuple[bytes, int]:
    """The entry of ``data`` at ``at``, and where the next one starts."""
    (size,) = _HEAD.unpack_from(data, at)
    head = orjson.loads(data[at + _HEAD.size : at + _HEAD.size + size])
    end = at + _HEAD.size + size + 4 * sum(length for _, length, _ in head)
    if end > len(data):
        raise ValueError(f"an entry of {end - at} bytes, {len(data) - at} left")
    return data[at:end], end


def segments_of(data: bytes) -> list[tuple[str, Any, Any]]:
    """The segments of an entry (:func:`entry`): doc, ids, spans."""
    import numpy as np

    (size,) = _HEAD.unpack_from(data)
    head = orjson.loads(data[_HEAD.size : _HEAD.size + size])
    ids = np.frombuffer(data, dtype="<i4", offset=_HEAD.size + size)
    segments, at = [], 0
    for doc, length, spans in head:
        segments.append((doc, ids[at : at + length], spans))
        at += length
    if at != len(ids):
        raise ValueError(f"an entry holds {len(ids)} ids, its segments {at}")
    return segments
