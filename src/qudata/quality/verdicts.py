"""A check's verdicts kept from map 1 for map 2, so that an expensive check runs once.

Map 1 runs the run's checks on every document it keys for deduplication; map 2 reads
the partition again and must reach the same verdicts. A check whose verdict depends
only on the texts it reads (decontamination) records each verdict under the sha256 of
those texts; map 1 leaves the partition's verdicts in a part file (plain JSON, its
sha256 carried by the scan), and map 2 loads them, verified, before it writes: a
document whose texts hash the same gets the recorded verdict (its counters replayed by
the check), any other is checked as usual. A missing file, or one whose sha256 differs,
only means checking again.

    memo = VerdictMemo()
    key = memo.key([("text", doc.text)])
    memo.put(key, None)  # kept
    memo.get(key)  # (True, None)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

__all__ = [
    "Memoized",
    "VerdictMemo",
    "forget_verdicts",
    "load_verdicts",
    "save_verdicts",
    "start_recording",
]


class VerdictMemo:
    """Verdicts (plain JSON data, ``None`` for a kept document) by the sha256 of the
    texts they were reached on."""

    def __init__(self) -> None:
        self.recording = False  # map 1: keep what is computed
        self._known: dict[str, Any] = {}

    @staticmethod
    def key(texts: Iterable[tuple[str, str]]) -> str:
        digest = hashlib.sha256()
        for where, text in texts:
            for value in (where, text):
                data = value.encode("utf-8", "surrogatepass")
                digest.update(b"%d:" % len(data))
                digest.update(data)
        return digest.hexdigest()

    @property
    def active(self) -> bool:
        """Whether it records or holds verdicts (else a check need not hash its texts)."""
        return self.recording or bool(self._known)

    def get(self, key: str) -> tuple[bool, Any]:
        """``(True, verdict)`` when one is known for ``key``, else ``(False, None)``."""
        if key in self._known:
            return True, self._known[key]
        return False, None

    def put(self, key: str, verdict: Any) -> None:
        if self.recording:
            self._known[key] = verdict

    def take(self) -> dict[str, Any]:
        """The verdicts kept so far, forgotten here."""
        known, self._known = self._known, {}
        return known

    def load(self, verdicts: dict[str, Any]) -> None:
        self._known = verdicts


class Memoized(Protocol):
    """A check that keeps its verdicts in a :class:`VerdictMemo`."""

    name: str
    memo: VerdictMemo


def _memoized(checks: Sequence[Any]) -> list[Memoized]:
    return [c for c in checks if isinstance(getattr(c, "memo", None), VerdictMemo)]


def start_recording(checks: Sequence[Any]) -> None:
    """Map 1, before a partition: the checks keep what they compute (from nothing)."""
    for check in _memoized(checks):
        check.memo.take()
        check.memo.recording = True


def save_verdicts(checks: Sequence[Any], path: Path) -> str | None:
    """Map 1, after a partition: its checks' verdicts in ``path``; their sha256, or
    None when no check keeps verdicts."""
    checks = _memoized(checks)
    if not checks:
        return None
    body = orjson.dumps({c.name: c.memo.take() for c in checks})
    for check in checks:
        check.memo.recording = False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return hashlib.sha256(body).hexdigest()


def load_verdicts(checks: Sequence[Any], path: Path, sha256: str | None) -> None:
    """Map 2, before a partition: map 1's verdicts for its checks, when the file is there
    and has the sha256 map 1 gave it (else each check computes again)."""
    checks = _memoized(checks)
    for check in checks:
        check.memo.recording = False
        check.memo.load({})
    if not checks or sha256 is None:
        return
    try:
        body = path.read_bytes()
    except OSError:
        return
    if hashlib.sha256(body).hexdigest() != sha256:
        return
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if not isinstance(data, dict):
        return
    for check in checks:
        verdicts = data.get(check.name)
        if isinstance(verdicts, dict):
            check.memo.load(verdicts)


def forget_verdicts(checks: Sequence[Any]) -> None:
    """Map 2, after a partition: nothing kept."""
    for check in _memoized(checks):
        check.memo.load({})
