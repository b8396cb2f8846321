"""Exact counts with a Hugging Face ``tokenizer.json``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from qudata.errors import ConfigError, MissingExtraError

__all__ = ["HFTokenizerCounter"]


class _Encoded:
    """A Hugging Face ``Encoding`` whose length is its number of tokens."""

    def __init__(self, encoding: Any) -> None:
        self.encoding = encoding

    def __len__(self) -> int:
        return len(self.encoding.ids)


class HFTokenizerCounter:
    """Exact counts with a Hugging Face ``tokenizer.json``: no special tokens added, no truncation.

    >>> HFTokenizerCounter("tokenizer.json").count("hello world")  # doctest: +SKIP
    2
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            feature = "Hugging Face tokenizer.json counting"
            raise MissingExtraError("tokenizers", "tokenizers", feature=feature) from exc
        self.name, self.exact = os.fspath(path), True
        if not os.path.isfile(path):
            raise ConfigError(f"tokenizer {self.name!r}: no such file")
        try:
            self._tokenizer = Tokenizer.from_file(self.name)
        except Exception as exc:  # tokenizers raises a bare Exception for a bad file
            raise ConfigError(f"tokenizer {self.name!r} cannot be loaded: {exc}") from exc
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [len(encoded) for encoded in self.encode_batch(texts)]

    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    def token_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, special tokens kept (what the model reads)."""
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=False))

    def ids(self, tokens: Any) -> list[int]:
        """The token ids of what :meth:`encode_batch` gave for a text."""
        return list(tokens.encoding.ids)

    def encode_batch(self, texts: Sequence[str]) -> list[Any]:
        batch = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [_Encoded(encoding) for encoding in batch]

    def token_ends(self, text: str, tokens: Any = None) -> list[int]:
        encoded = self.encode_batch([text])[0] if tokens is None else tokens
        offsets = encoded.encoding.offsets
        ends, high = [], 0
        for i, (start, end) in enumerate(offsets):
            # a token that shares its character with the next one (byte-level pieces of
            # one character) ends, safely, where that character starts
            if i + 1 < len(offsets) and offsets[i + 1][0] < end:
                end = start
            high = max(high, min(end, len(text)))
            ends.append(high)
        if ends:
            ends[-1] = len(text)
        return ends
