"""Duplicate removal, first copy kept: exact (normalised text) here, near in ``near_dedup``.

Exact: the text is normalised (Unicode NFC, case folded, whitespace runs to one
space) and hashed with xxh3-128. Near (:mod:`qudata.quality.near_dedup`): MinHash
LSH over word n-grams with ``rensa``. Documents are seen in input order, so the copy
kept is always the first one. Every verdict carries the document's duplicate-cluster
key, which later stages use to keep a cluster in one split.

Memory per million distinct texts (measured with ``bench/dedup_accuracy.py
--memory``): exact about 180 MB RSS, 150 MB by tracemalloc (a dict of 16-byte keys to
ids of 16 characters).

    >>> dedup = ExactDeduplicator()
    >>> dedup.check("a", "Hello  World").duplicate_of, dedup.check("b", "hello world").duplicate_of
    (None, 'a')
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import xxhash

from qudata.errors import ConfigError

__all__ = [
    "METHODS",
    "DedupVerdict",
    "Deduplicator",
    "ExactDeduplicator",
    "dedup_text",
    "exact_key",
    "exact_keys",
    "make_deduplicator",
    "normalize_text",
    "normalized_key",
]

#: The values of ``dedup.method`` / ``--dedup``.
METHODS = ("none", "exact", "near")

T = TypeVar("T")


def dedup_text(doc: Any, roles: Sequence[str]) -> str:
    """The text a document is compared on for duplicates (both engines call this).

    A plain document: its text. A conversation: the content of the messages of
    ``roles``, each with its tool calls (name and arguments), then its tool schemas,
    so that conversations differing only in a tool are not duplicates.
    """
    if doc.messages is None:
        return str(doc.text)
    import json

    parts = []
    for message in doc.messages:
        if message.get("role") not in roles:
            continue
        parts.append(str(message.get("content") or ""))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, dict) else {}
            parts.append(f"call {function.get('name')} {function.get('arguments')}")
    if doc.tools:
        parts.append(json.dumps(doc.tools, ensure_ascii=False, sort_keys=True))
    return "\n\n".join(parts)


def normalize_text(text: str) -> str:
    """NFC, case folded, whitespace runs collapsed to one space, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def normalized_key(normalized: str) -> bytes:
    """The 16-byte xxh3-128 digest of an already normalised text."""
    return xxhash.xxh3_128_digest(normalized.encode("utf-8", "surrogatepass"))


def exact_key(text: str) -> bytes:
    """The 128-bit xxh3 hash of the normalised text (its hex is the cluster key)."""
    return normalized_key(normalize_text(text))


def exact_keys(texts: Sequence[str]) -> list[bytes]:
    """:func:`exact_key` of each text (run in worker processes for large batches)."""
    return [exact_key(t) for t in texts]


@dataclass(frozen=True, slots=True)
class DedupVerdict:
    """``duplicate_of``: the id of the kept document this one repeats (``None``: keep it).

    ``reason`` is ``"duplicate_exact"`` or ``"duplicate_near"`` for a duplicate;
    ``cluster_key`` (hex) names the duplicate cluster: a kept document's own key, or the
    key of the cluster a duplicate joins.
    """

    duplicate_of: str | None
    reason: str | None
    cluster_key: str
    similarity: float | None = None  # near duplicates: the estimated Jaccard similarity


class Deduplicator(Protocol):
    """Called in input order; the first document of a cluster is kept."""

    def check(self, doc_id: str, text: str) -> DedupVerdict: ...

    def check_batch(self, items: Sequence[tuple[str, str]]) -> list[DedupVerdict]: ...

    def close(self) -> None: ...


class Workers:
    """Runs a pure per-batch function over a batch of texts, split across processes.

    Only batches of at least ``PARALLEL_CHARS`` characters go to the processes
    (:class:`qudata.engines.pool.ProcessPool`: they ignore Ctrl-C and die with this
    process); the results are in input order and do not depend on how the batch was split.
    """

    PARALLEL_CHARS = 250_000

    def __init__(self, workers: int | None) -> None:
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self._pool: Any = None

    def map(self, function: Callable[..., list[T]], texts: list[str], *args: Any) -> list[T]:
        if self.workers < 2 or sum(map(len, texts)) < self.PARALLEL_CHARS:
            return function(texts, *args)
        if self._pool is None:
            from qudata.engines.pool import ProcessPool

            self._pool = ProcessPool(self.workers)
        step = -(-len(texts) // self.workers)
        calls = [(texts[i : i + step], *args) for i in range(0, len(texts), step)]
        return [item for part in self._pool.map(function, calls) for item in part]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class ExactDeduplicator:
    """Keeps the first document of each normalised text."""

    def __init__(self, *, workers: int | None = None) -> None:
        self._seen: dict[bytes, str] = {}
        self._workers = Workers(workers)

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        self._workers.close()

    def check(self, doc_id: str, text: str) -> DedupVerdict:
        return self.check_key(doc_id, exact_key(text))

    def check_key(self, doc_id: str, key: bytes) -> DedupVerdict:
        """:meth:`check` for a precomputed :func:`exact_key`."""
        size = len(self._seen)
        first = self._seen.setdefault(key, doc_id)
        if len(self._seen) != size:
            return DedupVerdict(None, None, key.hex())
        return DedupVerdict(first, "duplicate_exact", key.hex())

    def check_batch(self, items: Sequence[tuple[str, str]]) -> list[DedupVerdict]:
        keys = self._workers.map(exact_keys, [text for _, text in items])
        return [self.check_key(doc_id, key) for (doc_id, _), key in zip(items, keys, strict=True)]


def make_deduplicator(
    method: str,
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    workers: int | None = None,
) -> Deduplicator | None:
    """``none`` (``None``), ``exact`` or ``near`` (needs the ``near`` extra)."""
    if method not in METHODS:
        raise ConfigError(
            f"dedup.method: unknown method {method!r} (choose from: {', '.join(METHODS)})"
        )
    if not 0 < threshold <= 1:
        raise ConfigError(f"dedup.threshold: must be in (0, 1], got {threshold}")
    if method == "exact":
        return ExactDeduplicator(workers=workers)
    if method == "near":
        from qudata.quality.near_dedup import NearDeduplicator

        return NearDeduplicator(threshold, num_perm=num_perm, ngram=ngram, workers=workers)
    return None
