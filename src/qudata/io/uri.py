"""Inputs named by URI (``s3://bucket/x.jsonl``): read through a local copy (fsspec)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from qudata.errors import InputError, MissingExtraError
from qudata.io.sources import Source

__all__ = ["is_uri", "local_copy"]


def is_uri(path: str) -> bool:
    """``s3://bucket/x.jsonl``, ``file:///data/x.jsonl``: read through fsspec."""
    return "://" in path


def _suffixes(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.split(".", 1)[1] if "." in name else ""


@contextmanager
def local_copy(source: Source) -> Iterator[Source]:
    """``source`` itself, or for a URI a temporary local copy that keeps its name."""
    if not is_uri(source.path):
        yield source
        return
    try:
        import fsspec
    except ImportError:
        raise MissingExtraError("ray", "fsspec", feature=f"Reading {source.path}") from None
    folder = tempfile.mkdtemp(prefix="qudata-input-")
    try:
        local = os.path.join(folder, "input" + _suffixes(source.path))
        try:
            with fsspec.open(source.path, "rb") as remote, open(local, "wb") as out:
                shutil.copyfileobj(remote, out, 1 << 20)
        except OSError as exc:
            raise InputError(f"cannot read: {exc}", source=source.name) from None
        yield Source(local, source.kind, source.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
