"""Exact counts with a Hugging Face ``tokenizer.json``; text is always ordinary text.

A text holding the tokenizer's own special-token strings (``<|endoftext|>``, ``</s>``,
``<|im_start|>``) or markup-like added tokens (``<think>``, ``<tool_call>``) is encoded
as the characters it holds, like tiktoken's ``encode_ordinary``: those ids are the
format's and the template's to place (:meth:`HFTokenizerCounter.token_id`), never the
content's. Content is encoded by a second tokenizer: the same file with those added
tokens marked special and ``encode_special_tokens`` set, so that they are not split out of
the text (``split_special_tokens`` in transformers) and every other id stays the file's.
"""

from __future__ import annotations

import hashlib
import json
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
            with open(path, "rb") as file:
                data = file.read()
            self.sha256 = hashlib.sha256(data).hexdigest()
            self._tokenizer = Tokenizer.from_str(data.decode("utf-8"))
            definition = json.loads(data)
            added = definition.get("added_tokens") or []
            placed = [t for t in added if _placed(t)]
            #: the tokens only a format or template places: content never encodes to them
            self.special_tokens: dict[str, int] = {t["content"]: int(t["id"]) for t in placed}
            for token in placed:
                token["special"] = True
            self._ordinary = Tokenizer.from_str(json.dumps(definition))
            if not hasattr(self._ordinary, "encode_special_tokens"):
                raise ConfigError(
                    f"tokenizer {self.name!r}: tokenizers is too old to encode special-token "
                    "text as text; pip install -U tokenizers"
                )
            self._ordinary.encode_special_tokens = True
        except ConfigError:
            raise
        except Exception as exc:  # tokenizers raises a bare Exception for a bad file
            raise ConfigError(f"tokenizer {self.name!r} cannot be loaded: {exc}") from exc
        for tokenizer in (self._tokenizer, self._ordinary):
            tokenizer.no_truncation()
            tokenizer.no_padding()

    @property
    def identity(self) -> dict[str, Any]:
        """What names this tokenizer in a manifest: its file's sha256 (which fixes its
        special tokens too)."""
        return {"backend": "tokenizers", "tokenizer_json_sha256": self.sha256}

    def count(self, text: str) -> int:
        return len(self._ordinary.encode(text, add_special_tokens=False).ids)

    def encode_ordinary(self, text: str) -> list[int]:
        """The ids of ``text`` as ordinary text (special-token strings in it included)."""
        return list(self._ordinary.encode(text, add_special_tokens=False).ids)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [len(encoded) for encoded in self.encode_batch(texts)]

    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    def token_id(self, token: str) -> int | None:
        """The id of ``token`` as one token (a special or added token, or a vocabulary
        entry): what a format or template places for its own markers."""
        return self._tokenizer.token_to_id(token)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, special tokens kept (what the model reads)."""
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=False))

    def ids(self, tokens: Any) -> list[int]:
        """The token ids of what :meth:`encode_batch` gave for a text."""
        return list(tokens.encoding.ids)

    def encode_batch(self, texts: Sequence[str]) -> list[Any]:
        batch = self._ordinary.encode_batch(list(texts), add_special_tokens=False)
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


def _placed(token: dict[str, Any]) -> bool:
    """An added token that content never encodes to: a special one, or one that looks like
    markup (``<think>``, ``[INST]``, ``<|fim_prefix|>``: bracketed, no whitespace), not a
    vocabulary piece such as a run of spaces."""
    content = str(token.get("content", ""))
    markup = (
        len(content) >= 3
        and content[0] in "<["
        and content[-1] in ">]"
        and not any(c.isspace() for c in content)
    )
    return bool(token.get("special")) or markup
