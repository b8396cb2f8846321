"""Assistant masks derived from a chat template and checked, never trusted.

Where each assistant turn is in the rendered text is found by *prefix rendering*: the
conversation up to the turn, rendered with the generation prompt, is a prefix of the
conversation rendered up to and including the turn; what the second adds is the turn's
span (its content, tool calls and end-of-turn marker, ``content + "<|im_end|>"`` in
ChatML; the newline after the marker is a separator, outside). A template that renders
an earlier turn differently from when it is the last one (Qwen3 strips earlier
``<think>`` blocks) is detected there: the span found at the end does not appear in the
whole rendering (:attr:`Turn.stable` is false).

The text is then tokenized segment by segment, cut at every span boundary and around
every marker, so that no token crosses a boundary (a BPE merge such as ``|>\\n`` would
blur it). Markers the tokenizer has as special tokens become those tokens; others are
encoded as text. :func:`check` verifies that the ids decode to the rendered text, that
the masked ids decode to exactly the spans, and that the mask is neither empty nor full.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from qudata.account import Drop
from qudata.errors import ConfigError

__all__ = ["Rendering", "Turn", "Vocabulary", "check", "find_turns", "tokenize_segments"]

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


def tokenize_segments(
    text: str,
    cuts: Sequence[int],
    vocab: Vocabulary,
    markers: Sequence[str],
    specials: dict[str, int],
) -> tuple[list[int], list[int]]:
    """The ids of ``text`` tokenized segment by segment, and the token index of each of
    ``cuts`` (sorted character offsets). Every one of ``markers`` is a segment of its own
    (the same tokens wherever it is); ``specials`` maps those the tokenizer has as
    special tokens to their ids."""
    pattern = _marker_pattern(tuple(markers))
    pieces: list[tuple[str, int | None]] = []  # (text, special id) in order
    marks: list[int] = []  # piece index at each cut
    bounds = [0, *cuts, len(text)]
    for number in range(len(bounds) - 1):
        if number:
            marks.append(len(pieces))
        segment = text[bounds[number] : bounds[number + 1]]
        at = 0
        for found in pattern.finditer(segment) if markers else ():
            if found.start() > at:
                pieces.append((segment[at : found.start()], None))
            pieces.append((found.group(0), specials.get(found.group(0))))
            at = found.end()
        if at < len(segment):
            pieces.append((segment[at:], None))
    plain = [p for p, special in pieces if special is None]
    encoded = iter(vocab.encode_batch(plain))
    ids: list[int] = []
    starts: list[int] = []
    for _piece, special in pieces:
        starts.append(len(ids))
        ids.extend([special] if special is not None else next(encoded))
    starts.append(len(ids))
    return ids, [starts[m] for m in marks]


_PATTERNS: dict[tuple[str, ...], re.Pattern[str]] = {}


def _marker_pattern(markers: tuple[str, ...]) -> re.Pattern[str]:
    pattern = _PATTERNS.get(markers)
    if pattern is None:
        ordered = sorted(markers, key=lambda m: (-len(m), m))
        pattern = re.compile("|".join(re.escape(m) for m in ordered) or "(?!)")
        _PATTERNS[markers] = pattern
    return pattern


def check(
    ids: Sequence[int],
    spans: Sequence[tuple[int, int]],
    text: str,
    char_spans: Sequence[tuple[int, int]],
    vocab: Vocabulary,
    *,
    whole: bool,
) -> Drop | None:
    """``None`` when ``ids`` decode to ``text`` and the token ``spans`` to exactly the
    ``char_spans``; else the reason. ``whole``: the mask is meant to cover everything
    (``mask: all``), so a full mask is no error."""
    if vocab.decode(ids) != text:
        return Drop("decode_mismatch", "the token ids do not decode to the rendered text")
    for (low, high), (start, end) in zip(spans, char_spans, strict=True):
        if vocab.decode(ids[low:high]) != text[start:end]:
            return Drop("mask_mismatch", "masked tokens do not decode to the assistant span")
    masked = sum(high - low for low, high in spans)
    if masked == 0:
        return Drop("mask_empty", "no token is in the loss (no assistant span)")
    if masked == len(ids) and not whole:
        return Drop("mask_full", "every token is in the loss: the template marks no context")
    return None
