"""Exact counts with a tiktoken encoding, and each token's end in characters."""

from __future__ import annotations

import operator
from array import array
from collections.abc import Sequence
from functools import cached_property
from itertools import accumulate, chain, islice
from typing import TYPE_CHECKING, Any

from qudata.quality.tokens.base import proportional_ends
from qudata.quality.tokens.threads import batch_threads

if TYPE_CHECKING:
    import tiktoken

__all__ = ["TiktokenCounter"]

_CONTINUATION = bytes(range(0x80, 0xC0))  # UTF-8 continuation bytes


class TiktokenCounter:
    """Exact counts with a tiktoken encoding.

    ``num_threads`` (``quality.token_threads``): threads of a big batch; ``None`` chooses
    per batch, from its size and the free CPUs (:func:`batch_threads`).
    """

    def __init__(self, encoding: tiktoken.Encoding, *, num_threads: int | None = None) -> None:
        self.name, self.exact, self.num_threads = encoding.name, True, num_threads
        self._encoding = encoding

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    @property
    def vocab_size(self) -> int:
        """Token ids run below this (special tokens included)."""
        return int(self._encoding.n_vocab)

    def token_id(self, token: str) -> int | None:
        """The id of a special token such as ``<|endoftext|>``, if the encoding has it."""
        return self._encoding._special_tokens.get(token)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (invalid UTF-8, from ids cut inside a character, replaced)."""
        return self._encoding.decode_bytes(list(ids)).decode("utf-8", errors="replace")

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [len(tokens) for tokens in self.encode_batch(texts)]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids of each text; on threads when the batch is big enough."""
        threads = self.num_threads or batch_threads(texts)
        if threads < 2 or len(texts) < 2:
            return [self._encoding.encode_ordinary(t) for t in texts]
        return self._encoding.encode_ordinary_batch(list(texts), num_threads=threads)

    def token_ends(self, text: str, tokens: Any = None) -> Sequence[int]:
        ids = self._encoding.encode_ordinary(text) if tokens is None else tokens
        starts, continues = self._tables
        # the characters each token starts, summed: where it ends, unless the next token
        # continues its last character (then it ends, safely, where that one starts)
        chars = accumulate(map(starts.__getitem__, ids))
        if text.isascii():
            ends = array("q", chars)
        else:
            nexts = chain(map(continues.__getitem__, islice(ids, 1, None)), (0,))
            ends = array("q", map(operator.sub, chars, nexts))
        if ends and ends[-1] != len(text):  # surrogate pairs: tiktoken joined two into one
            return proportional_ends(text, len(ids))
        return ends

    @cached_property
    def _tables(self) -> tuple[array[int], bytes]:
        """Per token id: how many characters it starts (its bytes that are not UTF-8
        continuation bytes), and whether its first byte continues a character."""
        size = self._encoding.max_token_value + 1
        starts, continues = array("q", bytes(8 * size)), bytearray(size)
        for token in range(size):
            try:
                piece = self._encoding.decode_single_token_bytes(token)
            except KeyError:  # a gap in the vocabulary
                continue
            starts[token] = len(piece.translate(None, _CONTINUATION))
            continues[token] = 0x80 <= piece[0] < 0xC0 if piece else 0
        return starts, bytes(continues)
