"""Token budgets: cut a long text into parts that each fit, or truncate it, in linear time.

The text is tokenized once (:meth:`~qudata.quality.tokens.TokenCounter.token_ends` gives
the character offset where each token ends). Each part then takes as many tokens as the
budget allows, and its cut moves back to the last paragraph boundary in that window,
else the last sentence boundary, else the last whitespace in the window's second half,
else the last token end (never inside a character). Parts are slices of the text: the
only characters lost are the whitespace at a cut. Each part is counted once more with
the exact counter, since cutting can change how its edges tokenize; a part over the
budget shrinks by its excess and is counted again (rare: the count calls stay a small
constant per part).

    >>> from qudata.quality.tokens import get_token_counter
    >>> counter = get_token_counter("cl100k_base")
    >>> split_to_budget("One two three. Four five six.\\n\\nSeven eight.", 5, counter)
    ['One two three.', 'Four five six.', 'Seven eight.']
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from functools import cached_property

from qudata.quality.tokens import TokenCounter

__all__ = ["guess_parts", "split_to_budget", "truncate_to_budget"]

_PARAGRAPH = re.compile(r"\n\s*\n")
# the whitespace after a full stop (also CJK ones): group 1; a lookbehind finds the same
# spans 2.4x slower
_SENTENCE = re.compile(r"[.!?\u3002\uff01\uff1f](\s+)")
_SPACE = re.compile(r"\s+")
_STOPS = ".!?\u3002\uff01\uff1f"  # _SENTENCE's full stops
_FIRST_BATCH, _MAX_BATCH = 4, 64  # parts guessed, then counted together
_LOOK_BACK = 32  # line ends looked at back from a window's end before the regex's spans


class _Cuts:
    """Boundaries of one kind as sorted ``(start, end)`` spans: a part ends at ``start``
    and the next one begins at ``end``."""

    def __init__(self, pattern: re.Pattern[str], text: str) -> None:
        group = 1 if pattern.groups else 0
        spans = [m.span(group) for m in pattern.finditer(text)]
        self.starts = [s for s, _ in spans]
        self.ends = [e for _, e in spans]

    def last(self, low: int, high: int) -> tuple[int, int] | None:
        """The last span starting in ``(low, high]``."""
        i = bisect_right(self.starts, high) - 1
        if i < 0 or self.starts[i] <= low:
            return None
        return self.starts[i], self.ends[i]


class _FromTheEnd:
    """A kind of boundary found back from a window's end; the regex's spans of the whole
    text (:class:`_Cuts` of :attr:`pattern`, made once) where that looks back too far."""

    pattern: re.Pattern[str]

    def __init__(self, text: str) -> None:
        self.text = text
        self._all: _Cuts | None = None

    def _regex(self, low: int, high: int) -> tuple[int, int] | None:
        if self._all is None:
            self._all = _Cuts(self.pattern, self.text)
        return self._all.last(low, high)


class _Paragraphs(_FromTheEnd):
    """:data:`_PARAGRAPH`'s breaks: a break is a run of whitespace holding two line ends
    or more, from its first line end to after its last (the regex's greedy match), so the
    last one starting in a window is found from the window's last line end; after
    :data:`_LOOK_BACK` line ends with no break (a window of single lines), the regex's."""

    pattern = _PARAGRAPH

    def last(self, low: int, high: int) -> tuple[int, int] | None:
        """As :meth:`_Cuts.last`: the last break starting in ``(low, high]``."""
        text = self.text
        line_end = text.rfind("\n", 0, high + 1)
        for _ in range(_LOOK_BACK):
            if line_end <= low:
                return None
            run = line_end  # the whitespace run holding this line end
            while run > 0 and text[run - 1].isspace():
                run -= 1
            first = text.find("\n", run, line_end + 1)
            final = text.rfind("\n", first, _run_end(text, line_end))
            if final > first:  # a break: the last one starting at or before ``high``
                return (first, final + 1) if first > low else None
            line_end = text.rfind("\n", 0, run)
        return self._regex(low, high)


class _Sentences(_FromTheEnd):
    """:data:`_SENTENCE`'s spans (group 1: the whitespace run after a full stop): every
    full stop followed by whitespace starts one, so the last is the nearest such stop;
    after :data:`_LOOK_BACK` stops followed by no whitespace (``1.5``, ``...``), the
    regex's."""

    pattern = _SENTENCE

    def last(self, low: int, high: int) -> tuple[int, int] | None:
        """As :meth:`_Cuts.last`: the last span starting in ``(low, high]``."""
        text, size = self.text, len(self.text)
        best, looked = low, 0  # a span must start after ``best``
        for stop in _STOPS:
            end = min(high, size - 1)  # the stop at most at ``high - 1``
            while (at := text.rfind(stop, 0, end)) >= max(best, 0):
                if text[at + 1].isspace():
                    best = at + 1
                    break
                looked += 1
                if looked > _LOOK_BACK:
                    return self._regex(low, high)
                end = at
        return None if best == low else (best, _run_end(text, best))


def _run_end(text: str, at: int) -> int:
    """Where the whitespace run at ``at`` (a whitespace character) ends."""
    match = _SPACE.match(text, at)
    assert match is not None
    return match.end()


class _Splitter:
    def __init__(self, text: str, budget: int, counter: TokenCounter) -> None:
        self.text, self.budget, self.counter = text, budget, counter
        self.ends: Sequence[int] = counter.token_ends(text)

    @cached_property
    def paragraphs(self) -> _Paragraphs:
        return _Paragraphs(self.text)

    @cached_property
    def sentences(self) -> _Sentences:  # only when a window has no paragraph break
        return _Sentences(self.text)

    def window_end(self, start: int, tokens: int) -> int:
        """The furthest token end such that ``text[start:end]`` spans ``tokens`` tokens."""
        ends = self.ends
        first = bisect_right(ends, start)  # the first token ending after ``start``
        last = min(first + tokens, len(ends)) - 1
        if last < first:
            return start
        return ends[last]

    def cut(self, start: int, high: int) -> tuple[int, int]:
        """Where the part from ``start`` ends (at most ``high``) and the next one begins."""
        text = self.text
        if high >= len(text):
            return len(text), len(text)
        span = self.paragraphs.last(start, high) or self.sentences.last(start, high)
        if span is not None:
            return span
        # the last whitespace in the second half of the window keeps words whole
        space = max(text.rfind(" ", start, high + 1), text.rfind("\n", start, high + 1))
        if space > start + (high - start) // 2:
            begin = space
            while begin > start and text[begin - 1].isspace():
                begin -= 1
            return begin, _run_end(text, space)
        if high <= start:  # not one token fits: take one whole token (or character)
            later = self.ends[bisect_right(self.ends, start) :]
            high = next((e for e in later if e > start), start + 1)
        return high, high

    def guess(self, start: int) -> tuple[str, int]:
        """The next part from ``start`` as the text's own tokens place it (not counted)."""
        end, following = self.cut(start, self.window_end(start, self.budget))
        return self.text[start:end].rstrip() or self.text[start:end], self.skip(following)

    def part(self, start: int) -> tuple[str, int]:
        """The next part from ``start``, counted, shrunk until it fits."""
        allowed, attempt = self.budget, 0
        while True:
            end, following = self.cut(start, self.window_end(start, allowed))
            part = self.text[start:end].rstrip() or self.text[start:end]
            over = self.counter.count(part) - self.budget
            if over <= 0 or len(part) == 1:
                break
            if allowed == 1:  # one token of the text is more than one on its own
                end = following = start + 1
                part = self.text[start:end]
                break
            # the cut changed the tokenization: shrink by the excess, then ever faster
            allowed = max(1, allowed - over * 2**attempt)
            attempt += 1
        return part, self.skip(following)

    def skip(self, position: int) -> int:
        """``position`` moved past the whitespace at a cut."""
        while position < len(self.text) and self.text[position].isspace():
            position += 1
        return position


def split_to_budget(text: str, budget: int, counter: TokenCounter) -> list[str]:
    """``text`` in order, as parts of at most ``budget`` tokens each (by ``counter``).

    A text within the budget is returned whole (tokenized once). A single character over
    the budget on its own (a budget below its token count) becomes a part of its own.
    The parts are guessed from the text's tokens and counted in batches (on threads,
    when the counter has them); a part over budget is redone on its own, and the batch
    after it is guessed again from there (batches grow while the guesses hold).
    """
    splitter = _Splitter(text, budget, counter)
    if len(splitter.ends) <= budget:  # token_ends has one end per token: the count
        return [text]
    parts: list[str] = []
    start, size = 0, _FIRST_BATCH
    while start < len(text):
        guesses: list[tuple[str, int]] = []
        at = start
        while at < len(text) and len(guesses) < size:
            guesses.append(splitter.guess(at))
            at = guesses[-1][1]
        counts = counter.count_batch([part for part, _ in guesses])
        for (part, following), n in zip(guesses, counts, strict=True):
            redo = n > budget and len(part) > 1  # the cut changed the tokenization
            if redo:
                part, following = splitter.part(start)
                size = 1  # guesses fail here: grow again from one
            if part:
                parts.append(part)
            start = following
            if redo:  # the guesses after it started from the wrong place
                break
        else:
            size = min(2 * size, _MAX_BATCH)
    return parts


def guess_parts(text: str, budget: int, counter: TokenCounter) -> list[str]:
    """The parts :func:`split_to_budget` tries first, uncounted: a caller that splits many
    texts can count all their guesses in one batch (on threads), and the splits then find
    their counts (a :class:`~qudata.quality.tokens.CountCache` remembers them)."""
    splitter = _Splitter(text, budget, counter)
    if len(splitter.ends) <= budget:
        return []
    parts, start = [], 0
    while start < len(text):
        part, start = splitter.guess(start)
        if part:
            parts.append(part)
    return parts


def truncate_to_budget(text: str, budget: int, counter: TokenCounter) -> str:
    """The longest prefix of ``text`` within ``budget`` tokens, cut as
    :func:`split_to_budget` cuts its first part."""
    splitter = _Splitter(text, budget, counter)
    if len(splitter.ends) <= budget:
        return text
    return splitter.part(0)[0]
