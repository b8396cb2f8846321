"""Assistant masks derived from a chat template and checked, never trusted.

Where each assistant turn is in the rendered text is found by *prefix rendering*: the
conversation up to the turn, rendered with the generation prompt, is a prefix of the
conversation rendered up to and including the turn; what the second adds is the turn's
span (its content, tool calls and end-of-turn marker, ``content + "<|im_end|>"`` in
ChatML; the newline after the marker is a separator, outside). A template that renders
an earlier turn differently from when it is the last one (Qwen3 strips earlier
``<think>`` blocks) is detected there: the span found at the end does not appear in the
whole rendering (:attr:`Turn.stable` is false).

A template that marks its assistant spans with ``{% generation %}`` gives them itself
(:func:`qudata.pack.templates.render_tracked`), as ``transformers`` reads them.

The whole text is then tokenized at once, as ``apply_chat_template`` tokenizes it (what
the model sees at inference; SentencePiece's ``▁`` prefix and BPE merges come out the
same), except that only the template's markers become special tokens: special-token
text elsewhere is ordinary text. A span's tokens are those from the one holding its
first character to the one holding its last (``char_to_token``, as ``transformers``'
``return_assistant_tokens_mask``). :func:`check` verifies that the ids decode to the
rendered text, that no masked token reaches past a span but for whitespace, and that
the mask is neither empty nor full.
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from qudata.account import Drop
from qudata.errors import ConfigError

__all__ = [
    "Encoded",
    "Rendering",
    "Turn",
    "Vocabulary",
    "check",
    "find_turns",
    "reasoning_counts",
    "token_spans",
]

#: ``render(messages, add_generation_prompt)``: a conversation's text
Render = Callable[[list[dict[str, Any]], bool], str]


@dataclass(frozen=True, slots=True)
class Turn:
    """One assistant turn: where its span is when it is the last turn (``alone``, the
    rendering of the conversation up to it), and where it is in the whole text."""

    message: int  # its index in the conversation
    start: int  # in the whole text (and in ``alone``: the prefix is shared)
    span: str  # the span as rendered when the turn is the last one
    alone: str  # the conversation rendered up to and including this turn
    stable: bool  # the whole text holds ``span`` at ``start``
    end: int | None  # the span's end in the whole text (None: not found)


@dataclass(frozen=True, slots=True)
class Rendering:
    """A conversation's text and its assistant turns."""

    text: str
    turns: list[Turn]


def find_turns(
    render: Render, messages: list[dict[str, Any]], markers: Sequence[str]
) -> Rendering | Drop:
    """The :class:`Rendering` of ``messages``, or a :class:`Drop` (``mask_unaligned``) when
    the template's generation prompt is not a prefix of its own rendering.

    The end of an unstable turn in the whole text is the first end-of-turn marker (the
    longest of ``markers`` its span ends with) after its start.
    """
    text = render(messages, False)
    turns: list[Turn] = []
    low = 0
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        prompt = render(messages[:i], True)
        alone = render(messages[: i + 1], False)
        start = len(prompt)
        if not alone.startswith(prompt) or not text.startswith(prompt) or start < low:
            return Drop(
                "mask_unaligned",
                f"message {i}: the template's generation prompt is not a prefix of the "
                "conversation it renders",
            )
        span = alone[start:].rstrip()
        if not span:
            continue
        if text.startswith(span, start):
            end: int | None = start + len(span)
            stable = True
        else:
            stable, end = False, None
            marker = next((m for m in markers if span.endswith(m)), None)
            at = text.find(marker, start) if marker else -1
            if marker and at >= 0:
                end = at + len(marker)
        turns.append(Turn(i, start, span, alone, stable, end))
        low = end if end is not None else start
    return Rendering(text, turns)


class Vocabulary:
    """The token ids of a run's exact tokenizer: encode, decode, special tokens."""

    def __init__(self, counter: Any) -> None:
        base = getattr(counter, "counter", counter)
        if counter is None or not getattr(counter, "exact", False) or not hasattr(base, "decode"):
            raise ConfigError(
                "-f packed writes token ids: set quality.tokenizer to cl100k_base, "
                "o200k_base or a tokenizer.json (not estimate or none)"
            )
        self._base = base
        self._ids = getattr(base, "ids", None)
        self.vocab_size: int = base.vocab_size

    @property
    def base(self) -> Any:
        """The token counter underneath (its ``name``: a ``tokenizer.json`` path)."""
        return self._base

    def token_id(self, token: str) -> int | None:
        found = self._base.token_id(token)
        return None if found is None else int(found)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self._base.encode_batch(list(texts)) if texts else []
        if self._ids is None:
            return [list(t) for t in encoded]
        return [list(self._ids(t)) for t in encoded]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._base.decode(ids))

    def encoder(self, markers: Sequence[str]) -> Callable[[str], Encoded]:
        """Tokenize a whole rendered text as ``transformers`` does, except that only
        ``markers`` (those the tokenizer has as added tokens) become their ids: any other
        special-token text is ordinary text."""
        path = getattr(self._base, "name", None)
        if not isinstance(path, str) or not os.path.isfile(path):
            if hasattr(self._base, "encode_ordinary") and hasattr(self._base, "special_tokens"):
                return _split_encoder(self._base, markers)
            raise ConfigError(f"-f packed: cannot tokenize with {type(self._base).__name__}")
        return _hf_encoder(path, markers)

    def counter(self, markers: Sequence[str]) -> Callable[[str], int]:
        """How many tokens :meth:`encoder` gives a text (no offsets: cheaper)."""
        path = getattr(self._base, "name", None)
        if not isinstance(path, str) or not os.path.isfile(path):
            base, pattern = self._base, _special_pattern(self._base.special_tokens, markers)

            def count(text: str) -> int:
                pieces = pattern.split(text)  # the text between the markers
                specials = len(pieces) - 1
                return specials + sum(len(base.encode_ordinary(p)) for p in pieces if p)

            return count
        tokenizer = _marker_tokenizer(str(self._base.name), frozenset(markers))
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


@dataclass(frozen=True, slots=True)
class Encoded:
    """The token ids of a whole text, and where each token is in it (characters)."""

    ids: list[int]
    starts: list[int]  # the character each token starts at
    ends: list[int]  # the character after it
    first: Callable[[int], int | None]  # the (first) token that holds a character
    last: Callable[[int], int | None]  # the last token that holds a character
    markers: frozenset[int] = frozenset()  # the ids of the markers (special tokens here)

    def token_span(self, start: int, end: int) -> tuple[int, int] | None:
        """The tokens of characters ``start:end`` as ``transformers`` masks them
        (``char_to_token`` of the first and of the last character), or ``None``."""
        low = next((t for c in range(start, end) if (t := self.first(c)) is not None), None)
        high = next(
            (t for c in range(end - 1, start - 1, -1) if (t := self.last(c)) is not None), None
        )
        return None if low is None or high is None else (low, high + 1)


def _special_pattern(specials: dict[str, int], markers: Sequence[str]) -> re.Pattern[str]:
    """The markers that are special tokens, longest first (no capturing group)."""
    allowed = sorted((m for m in markers if m in specials), key=lambda m: (-len(m), m))
    return re.compile("|".join(re.escape(m) for m in allowed) or "(?!)")


def _split_encoder(base: Any, markers: Sequence[str]) -> Callable[[str], Encoded]:
    """A tiktoken-style encoding (cl100k_base, o200k_base): the text cut at the markers
    that are special tokens, each piece between them encoded as ordinary text, as
    tiktoken's ``encode(allowed_special=...)`` does."""
    specials = base.special_tokens
    pattern = _special_pattern(specials, markers)

    def encode(text: str) -> Encoded:
        ids: list[int] = []
        starts: list[int] = []
        ends: list[int] = []

        def ordinary(low: int, high: int) -> None:
            if high > low:
                piece = text[low:high]
                tokens = base.encode_ordinary(piece)
                at = low
                for end in base.token_ends(piece, tokens):
                    starts.append(at)
                    ends.append(low + int(end))
                    at = low + int(end)
                ids.extend(int(t) for t in tokens)

        at = 0
        for found in pattern.finditer(text):
            ordinary(at, found.start())
            ids.append(specials[found.group(0)])
            starts.append(found.start())
            ends.append(found.end())
            at = found.end()
        ordinary(at, len(text))

        def last(char: int) -> int | None:
            found = bisect.bisect_right(starts, char) - 1
            return found if found >= 0 else None

        def first(char: int) -> int | None:
            found = last(char)  # a character cut into several tokens: the first of them
            return None if found is None else bisect.bisect_left(starts, starts[found])

        return Encoded(ids, starts, ends, first, last, marker_ids)

    marker_ids = frozenset(specials[m] for m in markers if m in specials)
    return encode


@lru_cache(maxsize=4)
def _marker_tokenizer(path: str, markers: frozenset[str]) -> Any:
    """The tokenizer of ``path`` where only ``markers`` are split out of a text as added
    tokens: every other added token (special or not) is encoded as ordinary text."""
    from tokenizers import Tokenizer

    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    for added in data.get("added_tokens") or []:
        added["special"] = added.get("content") not in markers
    tokenizer = Tokenizer.from_str(json.dumps(data))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    tokenizer.encode_special_tokens = True
    return tokenizer


def _hf_encoder(path: str, markers: Sequence[str]) -> Callable[[str], Encoded]:
    tokenizer = _marker_tokenizer(path, frozenset(markers))
    marker_ids = frozenset(i for m in markers if (i := tokenizer.token_to_id(m)) is not None)

    def encode(text: str) -> Encoded:
        found = tokenizer.encode(text, add_special_tokens=False)
        offsets = found.offsets
        return Encoded(
            list(found.ids),
            [s for s, _ in offsets],
            [e for _, e in offsets],
            found.char_to_token,
            found.char_to_token,
            marker_ids,
        )

    return encode


def token_spans(
    encoded: Encoded, char_spans: Sequence[tuple[int, int]]
) -> list[tuple[int, int]] | Drop:
    """The token range of each of ``char_spans``, or ``mask_unaligned``."""
    spans = []
    for start, end in char_spans:
        found = encoded.token_span(start, end) if end > start else None
        if found is None:
            return Drop("mask_unaligned", "an assistant span holds no token")
        spans.append(found)
    return spans


def _decodes_piecewise(encoded: Encoded, text: str, vocab: Vocabulary) -> bool:
    """The text between the markers decodes to itself, piece by piece, but for one space
    at its start: a legacy SentencePiece ``tokenizer.json`` (Llama-2's, a ``Prepend("▁")``
    normalizer) starts every piece after a special token with ``▁``, which a decoder
    turns into a space after the marker (``<s> [INST]``), as the model reads it; its
    decoder's ``Strip`` drops a piece's first space. Anything else lost is a mismatch."""
    ids, at, low = encoded.ids, 0, 0
    for index in [*(i for i, t in enumerate(ids) if t in encoded.markers), len(ids)]:
        high = encoded.starts[index] if index < len(ids) else len(text)
        piece, decoded = text[at:high], vocab.decode(ids[low:index])
        if decoded != piece and decoded.removeprefix(" ") != piece.removeprefix(" "):
            return False
        if index < len(ids):
            at, low = encoded.ends[index], index + 1
    return True


def check(
    encoded: Encoded,
    spans: Sequence[tuple[int, int]],
    text: str,
    char_spans: Sequence[tuple[int, int]],
    vocab: Vocabulary,
    *,
    whole: bool,
) -> Drop | None:
    """``None`` when the ids decode to ``text`` and the token ``spans`` cover exactly the
    ``char_spans`` (a token that also holds whitespace outside a span is allowed: the
    tokenizer merged a separator into it); else the reason. ``whole``: the mask is meant
    to cover everything (``mask: all``), so a full mask is no error."""
    ids = encoded.ids
    if vocab.decode(ids) != text and not _decodes_piecewise(encoded, text, vocab):
        return Drop("decode_mismatch", "the token ids do not decode to the rendered text")
    for (low, high), (start, end) in zip(spans, char_spans, strict=True):
        before = text[min(encoded.starts[low], start) : start]
        after = text[end : max(encoded.ends[high - 1], end)]
        if before.strip() or after.strip():
            return Drop("mask_mismatch", "a masked token crosses the assistant span's boundary")
    masked = len({i for low, high in spans for i in range(low, high)})
    if masked == 0:
        return Drop("mask_empty", "no token is in the loss (no assistant span)")
    if masked == len(ids) and not whole:
        return Drop("mask_full", "every token is in the loss: the template marks no context")
    return None


def reasoning_counts(
    text: str, encoded: Encoded, spans: Sequence[tuple[int, int]]
) -> tuple[int, int]:
    """Tokens inside ``<think>...</think>`` blocks of ``text`` (the tags included): how
    many are in the loss, and how many are context."""
    if "<think>" not in text:
        return 0, 0
    regions = []
    at = text.find("<think>")
    while at >= 0:
        close = text.find("</think>", at)
        end = len(text) if close < 0 else close + len("</think>")
        regions.append((at, end))
        at = text.find("<think>", end)
    masked = bytearray(len(encoded.ids))
    for low, high in spans:
        masked[low:high] = b"\x01" * (high - low)
    trained = context = 0
    for low, high in regions:
        first = bisect.bisect_left(encoded.starts, low)
        last = bisect.bisect_left(encoded.starts, high)
        inside = sum(masked[first:last])
        trained += inside
        context += last - first - inside
    return trained, context
