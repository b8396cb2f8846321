"""Lines of a stream in bounded memory: a line longer than the limit is never held whole.

A line of at most ``max_bytes`` is yielded as bytes. A longer one is yielded as a
:class:`LongLine` (its size and first bytes) while the rest of it is skipped in 1 MB
steps up to the next newline. A long line holding a NUL byte is binary data (JSON and
text never hold one): reading stops there, so ``/dev/zero`` ends at once instead of
being skipped forever.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DEFAULT_MAX_LINE_BYTES", "LongLine", "read_lines"]

DEFAULT_MAX_LINE_BYTES = 64 * 10**6
_STEP = 1 << 20
_PREFIX = 256


class _Readable(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line over the limit: ``size`` bytes (at least, when ``binary``), its first bytes,
    and whether it held a NUL byte (then nothing after it was read)."""

    size: int
    prefix: bytes
    binary: bool = False

    def describe(self, limit: int) -> str:
        """One line for a reject or a problem: how long, and how it starts."""
        size = f"at least {self.size:,}" if self.binary else f"{self.size:,}"
        text = f"a line of {size} bytes, over the limit of {limit:,} (input.max_line_bytes)"
        if self.binary:
            return text + "; it holds NUL bytes (binary data): the rest is not read"
        return f"{text}; it starts {self.prefix[:64]!r}"


def read_lines(
    stream: _Readable, max_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[bytes | LongLine]:
    """Every line of ``stream`` (with its newline), or a :class:`LongLine` in its place."""
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        if len(line) <= max_bytes or line.endswith(b"\n"):
            yield line
            continue
        size, prefix = len(line), line[:_PREFIX]
        binary = b"\0" in line
        del line
        while not binary:
            part = stream.readline(_STEP)
            size += len(part)
            if not part or part.endswith(b"\n"):
                break
            binary = b"\0" in part
        yield LongLine(size, prefix, binary)
        if binary:
            return
