"""A counter that remembers counts and tokens, so that each text is tokenized once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import xxhash

from qudata.quality.tokens.base import TokenCounter

__all__ = ["CountCache"]


class CountCache:
    """A counter that remembers: each distinct text of a batch is tokenized once, whoever
    asks (the ChatML budget, every format's output, the manifest, ``add_metadata``).

    Wraps the run's counter; :meth:`clear` it between batches so memory stays bounded.
    The tokens themselves are kept too (up to ``KEEP_TOKENS`` per batch, and always the
    last text counted on its own), so that a text cut to a budget after its count is not
    tokenized again.

    Across batches it remembers the exact counts of long texts (``REPEAT_CHARS`` characters or
    more) by their 128-bit xxh3 digest, up to ``REPEATS`` of them, the oldest forgotten
    first. A text seen again (a license, boilerplate, a copy that exact dedup drops but
    the manifest still counts in ``dropped_tokens``) is then not tokenized again.

    >>> from qudata.quality.tokens import EstimateCounter
    >>> cache = CountCache(EstimateCounter())
    >>> cache.count_batch(["a b c d e", "a b c d e"]), cache.size
    ([2, 2], 1)
    """

    KEEP_TOKENS = 1 << 20  # about 36 MB of token lists
    REPEAT_CHARS = 1024  # shorter texts are cheaper to tokenize than to remember
    REPEATS = 1 << 16  # about 12 MB of digests and counts

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.name, self.exact = counter.name, counter.exact
        self._counts: dict[str, int] = {}
        self._tokens: dict[str, Any] = {}  # text -> what the counter's encode_batch gave
        self._kept = 0  # tokens held in _tokens
        self._last: tuple[str, Any] | None = None  # the last text counted on its own
        self._ends: dict[str, Sequence[int]] = {}  # of the batch's texts cut to a budget
        self._repeats: dict[bytes, int] = {}  # digest of a long text -> its count

    @property
    def size(self) -> int:
        """How many distinct texts are remembered."""
        return len(self._counts)

    def clear(self) -> None:
        self._counts.clear()
        self._tokens.clear()
        self._kept = 0
        self._last = None
        self._ends.clear()

    def count(self, text: str) -> int:
        n = self._counts.get(text)
        if n is not None:
            return n
        encode = getattr(self.counter, "encode_batch", None)
        if encode is None:
            n = self._counts[text] = self.counter.count(text)
            return n
        tokens = encode([text])[0]
        self._last = (text, tokens)
        n = self._counts[text] = len(tokens)
        return n

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        counts = self._counts
        missing = list(dict.fromkeys(t for t in texts if t not in counts))
        # the long texts not remembered (an estimate costs less than their digest)
        digests = self._recall(missing) if self.exact else {}
        missing = [t for t in missing if t not in counts]
        if not missing:
            pass
        elif hasattr(self.counter, "encode_batch"):
            for text, tokens in zip(missing, self.counter.encode_batch(missing), strict=True):
                counts[text] = len(tokens)
                if self._kept + len(tokens) <= self.KEEP_TOKENS:  # may be cut to a budget
                    self._tokens[text] = tokens
                    self._kept += len(tokens)
        else:
            counts.update(zip(missing, self.counter.count_batch(missing), strict=True))
        self._remember(digests)
        return [counts[t] for t in texts]

    def _recall(self, texts: list[str]) -> dict[str, bytes]:
        """The digests of the long ``texts``; those already remembered get their count."""
        digests: dict[str, bytes] = {}
        for text in texts:
            if len(text) >= self.REPEAT_CHARS:
                digest = xxhash.xxh3_128_digest(text.encode("utf-8", "surrogatepass"))
                known = self._repeats.get(digest)
                if known is None:
                    digests[text] = digest
                else:
                    self._counts[text] = known
        return digests

    def _remember(self, digests: dict[str, bytes]) -> None:
        repeats = self._repeats
        for text, digest in digests.items():
            if len(repeats) >= self.REPEATS:
                del repeats[next(iter(repeats))]
            repeats[digest] = self._counts[text]

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text`` (those kept from its count when there are some)."""
        tokens = self._tokens.get(text)
        if tokens is None and self._last is not None and self._last[0] is text:
            tokens = self._last[1]
        if tokens is None:
            tokens = self.counter.encode_batch([text])[0]  # type: ignore[attr-defined]
        ids = getattr(self.counter, "ids", None)
        return list(tokens) if ids is None else list(ids(tokens))

    def encode_ids(self, text: str) -> Any:
        """The token ids of ``text`` as the counter gives them (quicktok: a numpy array,
        else a list), for code that only needs their values in order (a ``.bin``)."""
        tokens = self._tokens.get(text)
        if tokens is None and self._last is not None and self._last[0] is text:
            tokens = self._last[1]
        if tokens is None:
            tokens = self.counter.encode_batch([text])[0]  # type: ignore[attr-defined]
        if hasattr(tokens, "dtype"):
            return tokens
        ids = getattr(self.counter, "ids", None)
        return list(tokens) if ids is None else list(ids(tokens))

    def token_ends(self, text: str, tokens: Any = None) -> Sequence[int]:
        known = self._ends.get(text)
        if known is not None:
            return known
        if self._last is not None and self._last[0] is text:
            tokens = self._last[1]
        elif text in self._tokens:
            tokens = self._tokens.pop(text)
            self._kept -= len(tokens)
        ends = self._ends[text] = self.counter.token_ends(text, tokens)
        self._counts[text] = len(ends)
        return ends
