"""Shuffle records in bounded memory: spill to bucket files, then sort each bucket.

Each record gets a seeded 64-bit key (from the document id and its part), is
written to one of ``buckets`` temporary files by the key's top bits, and at
the end every bucket is read, sorted by key, and replayed. Memory holds one
bucket at a time (about input size / buckets); the order is a function of the
seed and the ids only, so it is reproducible and the same in every format.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import xxhash

__all__ = ["SpillShuffler"]

_HEADER = struct.Struct("<QQI")  # key, document number, length


class SpillShuffler:
    """Collect ``(key, document)`` pairs on disk; replay them in key order. ``encoded``:
    the payloads are bytes, kept and given back as they are (a document's entry of a
    part: no JSON round trip)."""

    def __init__(
        self, directory: Path, *, seed: int, buckets: int = 64, encoded: bool = False
    ) -> None:
        self.encoded = encoded
        self._dir = Path(tempfile.mkdtemp(prefix=".shuffle-", dir=directory))
        self._seed = seed
        self._buckets: list[BinaryIO] = [
            open(self._dir / f"{i:03d}.bin", "wb")  # noqa: SIM115 - closed in replay/cleanup
            for i in range(buckets)
        ]
        self._count = 0

    def add(self, doc_id: str, payload: Any) -> None:
        """Queue one document's payload (any orjson-serialisable value; bytes when
        ``encoded``)."""
        key = xxhash.xxh3_64_intdigest(doc_id.encode("utf-8", "surrogatepass"), seed=self._seed)
        data = payload if self.encoded else orjson.dumps(payload)
        bucket = (key * len(self._buckets)) >> 64  # uniform for any number of buckets
        self._buckets[bucket].write(_HEADER.pack(key, self._count, len(data)) + data)
        self._count += 1

    def replay(self) -> Iterator[Any]:
        """Every payload, in seeded key order (ties in input order); removes the spill files."""
        for handle in self._buckets:
            handle.close()
        try:
            for handle in self._buckets:
                data = Path(handle.name).read_bytes()
                items = []
                offset = 0
                while offset < len(data):
                    key, number, length = _HEADER.unpack_from(data, offset)
                    offset += _HEADER.size
                    items.append((key, number, data[offset : offset + length]))
                    offset += length
                del data
                items.sort()
                for _, _, raw in items:
                    yield raw if self.encoded else orjson.loads(raw)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        for handle in self._buckets:
            handle.close()
        shutil.rmtree(self._dir, ignore_errors=True)
