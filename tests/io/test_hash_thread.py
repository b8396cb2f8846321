"""A digest fed on a second thread gives the digest of the bytes in order."""

from __future__ import annotations

import hashlib
import os
import threading

import xxhash

from qudata.io.hash_thread import HashThread


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
