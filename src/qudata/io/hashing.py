"""Hashing bytes: on a second thread beside the one that reads or writes them
(:class:`HashThread`), or a local file's, read in chunks (:func:`file_hexdigest`).

``hashlib`` and ``xxhash`` let go of the GIL on large buffers, so a file's sha256 costs
the reading or writing thread only the hand-over of each chunk. An input is hashed as it
is parsed (:mod:`qudata.io.input_stream`), a written file as it is written
(:mod:`qudata.io.writers`), and a published file as the gate counts its records
(:mod:`qudata.export.readback`).

Example::

    digest = hashlib.sha256()
    hashing = HashThread(digest)
    for chunk in chunks:
        hashing.update(chunk)
    hashing.close()  # every chunk hashed
    digest.hexdigest()
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any

__all__ = ["HashThread", "file_hexdigest"]

_CHUNK = 1 << 22


class HashThread:
    """Feeds ``digest`` (anything with ``update``) on its own thread; at most ``depth``
    chunks wait, so a reader never runs far ahead of the hash."""

    def __init__(self, digest: Any, depth: int = 4) -> None:
        self.digest = digest
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, daemon=True, name="qudata-hash")
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self.digest.update(chunk)

    def update(self, chunk: bytes) -> None:
        """Hash ``chunk`` (it must not change afterwards: ``bytes``, not a buffer reused)."""
        self._queue.put(chunk)

    def close(self) -> None:
        """Wait until every chunk given is hashed, and end the thread (again: nothing)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def file_hexdigest(
    path: str | os.PathLike[str], digest: Any, span: tuple[int, int] | None = None
) -> str:
    """The hex digest of the local file ``path`` (of its bytes ``start`` to ``end`` with
    ``span``), fed to ``digest`` (a new ``hashlib`` or ``xxhash`` object)."""
    with open(path, "rb") as handle:
        if span is None:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        else:
            handle.seek(span[0])
            left = span[1] - span[0]
            while left > 0 and (chunk := handle.read(min(left, _CHUNK))):
                digest.update(chunk)
                left -= len(chunk)
    hexdigest: str = digest.hexdigest()
    return hexdigest
