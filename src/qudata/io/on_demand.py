"""Files a step reads only when its data names them, fetched on demand.

The dedup step reads some files only for the documents its data names: the MinHash
signatures of a candidate pair's partitions, the ids of the kept documents a partition's
duplicates point to. Where the staging folder is local (or shared) they are simply
there. Where a Ray task keeps the staging on object storage
(:mod:`qudata.engines.ray_scratch`), the task registers a fetcher for the time of its
call, and :func:`need` fetches such a file into the task's scratch folder on its first
use, so a task fetches the partitions its data names, not all of them.

    path = need(partition_file(directory, part, ".sig"))  # then read it as usual
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["need", "on_demand"]

_fetcher: list[Callable[[Path], None]] = []


def need(path: Path) -> Path:
    """``path``, fetched first if this call's files are fetched on demand."""
    if _fetcher:
        _fetcher[-1](path)
    return path


@contextmanager
def on_demand(fetch: Callable[[Path], None]) -> Iterator[None]:
    """Within the block, :func:`need` calls ``fetch`` (which fetches once, and ignores
    a path it does not know)."""
    _fetcher.append(fetch)
    try:
        yield
    finally:
        _fetcher.pop()
