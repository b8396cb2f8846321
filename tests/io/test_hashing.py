"""A digest fed on a second thread gives the digest of the bytes in order."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import xxhash

from qudata.io.hashing import HashThread


def test_the_digest_is_the_bytes_in_order() -> None:
    chunks = [os.urandom(n) for n in (1, 0, 70_000, 3, 1 << 20, 5)]
    for make in (hashlib.sha256, xxhash.xxh3_128):
        digest = make()
        hashing = HashThread(digest, depth=1)
        for chunk in chunks:
            hashing.update(chunk)
        hashing.close()
        hashing.close()  # again: nothing
        assert digest.hexdigest() == make(b"".join(chunks)).hexdigest()
    assert not [t for t in threading.enumerate() if t.name == "qudata-hash"]


def test_a_file_or_a_range_of_it_is_hashed_as_its_bytes(tmp_path: Path) -> None:
    from qudata.io.hashing import file_hexdigest

    data = os.urandom((5 << 20) + 17)  # more than one chunk
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_hexdigest(path, hashlib.sha256()) == hashlib.sha256(data).hexdigest()
    for start, end in ((0, 0), (3, 70_000), (1 << 20, len(data)), (len(data) - 5, len(data) + 9)):
        found = file_hexdigest(str(path), xxhash.xxh3_128(), (start, end))
        assert found == xxhash.xxh3_128_hexdigest(data[start:end])
