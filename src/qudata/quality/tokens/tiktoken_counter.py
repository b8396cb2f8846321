"""Exact counts with a tiktoken encoding (or quicktok's, proven the same), and each
token's end in characters."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from qudata.quality.tokens.base import proportional_ends
from qudata.quality.tokens.encodings import ENCODINGS
from qudata.quality.tokens.fast import without_surrogates
from qudata.quality.tokens.threads import batch_threads

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TiktokenCounter"]

_CONTINUATION = bytes(range(0x80, 0xC0))  # UTF-8 continuation bytes


class TiktokenCounter:
    """Exact counts with a tiktoken encoding, or a quicktok one (:mod:`.fast`): ids equal
    tiktoken's ``encode_ordinary``, special-token strings in a text being text.

    ``num_threads`` (``quality.token_threads``): threads of a big batch; ``None`` chooses
    per batch, from its size and the free CPUs (:func:`batch_threads`).
    """

    def __init__(self, encoding: Any, *, num_threads: int | None = None) -> None:
        self.name, self.exact, self.num_threads = encoding.name, True, num_threads
        self._encoding = encoding
        self._quick = type(encoding).__module__.startswith("quicktok")
        if self.name in ENCODINGS:
            self._special = dict(ENCODINGS[self.name][2])
        else:
            self._special = dict(encoding._special_tokens)
        self.backend = "quicktok" if self._quick else "tiktoken"

    def count(self, text: str) -> int:
        return len(self.encode_ordinary(text))

    def encode_ordinary(self, text: str) -> list[int]:
        """The ids of ``text`` as ordinary text (special-token strings in it included)."""
        if not self._quick:
            return list(self._encoding.encode_ordinary(text))
        try:
            return list(self._encoding.encode_ordinary(text))
        except (TypeError, UnicodeEncodeError):  # a lone surrogate: as tiktoken does
            return list(self._encoding.encode_ordinary(without_surrogates(text)))

    def ids(self, tokens: Any) -> list[int]:
        """The token ids of what :meth:`encode_batch` gave for a text."""
        tolist = getattr(tokens, "tolist", None)  # quicktok's numpy arrays
        return list(tokens) if tolist is None else tolist()

    @property
    def special_tokens(self) -> dict[str, int]:
        """The special tokens (``<|endoftext|>`` ...): only a format places them."""
        return dict(self._special)

    @property
    def identity(self) -> dict[str, Any]:
        """What names this tokenizer in a manifest: the encoding, its rank file's sha256
        (checked at load) and its special tokens (fixed by the encoding)."""
        return {
            "backend": self.backend,
            "encoding": self.name,
            "rank_file_sha256": ENCODINGS[self.name][0] if self.name in ENCODINGS else None,
            "special_tokens": self.special_tokens,
        }

    @property
    def vocab_size(self) -> int:
        """Token ids run below this (special tokens included)."""
        return int(self._encoding.n_vocab)

    def token_id(self, token: str) -> int | None:
        """The id of a special token such as ``<|endoftext|>``, if the encoding has it."""
        return self._special.get(token)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (invalid UTF-8, from ids cut inside a character, replaced)."""
        return bytes(self._encoding.decode_bytes(self.ids(ids))).decode("utf-8", errors="replace")

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        if self._quick and len(texts) > 1:
            import numpy as np

            return np.diff(self._quick_batch(texts)[1]).tolist()  # type: ignore[no-any-return]
        return [len(tokens) for tokens in self.encode_batch(texts)]

    def encode_batch(self, texts: Sequence[str]) -> list[Any]:
        """The tokens of each text (lists of ids, or arrays with quicktok: :meth:`ids`
        gives the list); on threads when the batch is big enough."""
        if self._quick:
            if len(texts) < 2:
                return [self.encode_ordinary(t) for t in texts]
            flat, offsets = self._quick_batch(texts)
            bounds = offsets.tolist()
            return [flat[bounds[i] : bounds[i + 1]] for i in range(len(texts))]
        threads = self.num_threads or batch_threads(texts)
        if threads < 2 or len(texts) < 2:
            return [self._encoding.encode_ordinary(t) for t in texts]
        batch: list[Any] = self._encoding.encode_ordinary_batch(list(texts), num_threads=threads)
        return batch

    def _quick_batch(self, texts: Sequence[str]) -> tuple[np.ndarray[Any, Any], Any]:
        """quicktok's flat ids and offsets of ``texts``; lone surrogates as tiktoken does."""
        threads = self.num_threads or batch_threads(texts)
        batch = texts if isinstance(texts, list) else list(texts)
        try:
            flat, offsets = self._encoding.encode_batch(batch, threads, False)
        except (TypeError, UnicodeEncodeError):
            batch = [t if _encodable(t) else without_surrogates(t) for t in batch]
            flat, offsets = self._encoding.encode_batch(batch, threads, False)
        return flat, offsets

    def token_ends(self, text: str, tokens: Any = None) -> Sequence[int]:
        import numpy as np

        ids = np.asarray(self.encode_ordinary(text) if tokens is None else tokens, np.int64)
        starts, continues = self._tables
        # the characters each token starts, summed: where it ends, unless the next token
        # continues its last character (then it ends, safely, where that one starts)
        ends = np.cumsum(starts[ids])
        if len(ids) > 1 and not text.isascii():
            ends[:-1] -= continues[ids[1:]]
        if len(ends) and ends[-1] != len(text):  # surrogates: tiktoken joined two into one
            return proportional_ends(text, len(ids))
        out = array("q")
        out.frombytes(ends.tobytes())
        return out

    @property
    def _tables(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        return _token_tables(self._encoding)


@cache
def _token_tables(encoding: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Per token id of ``encoding``: how many characters it starts (its bytes that are not
    UTF-8 continuation bytes), and whether its first byte continues a character. Built
    once per process and encoding, whichever counters share it."""
    import numpy as np

    size = encoding.max_token_value + 1
    starts, continues = np.zeros(size, np.int64), np.zeros(size, np.int64)
    for token in range(size):
        try:
            piece = bytes(encoding.decode_single_token_bytes(token))
        except KeyError:  # a gap in the vocabulary
            continue
        starts[token] = len(piece.translate(None, _CONTINUATION))
        continues[token] = 0x80 <= piece[0] < 0xC0 if piece else 0
    return starts, continues


def _encodable(text: str) -> bool:
    """``text`` has no lone surrogate (it can be UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
