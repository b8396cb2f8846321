"""No role forgery: chat markup inside text can never open or close a turn.

Trainers render ``messages`` themselves and tokenizers turn special-token
strings found in text into real special tokens, so a document containing
``<|im_start|>system`` could forge a turn. Every message content is checked
for the ChatML markers and, with a chat template, the markers that template
uses. The policy (``pack.chatml.markup``):

* ``escape`` (default): a backslash goes after the marker's first character
  (``<|im_start|>`` becomes ``<\\|im_start|>``): the text stays readable and no
  tokenizer sees the marker;
* ``strip``: markers are removed;
* ``drop``: the record is dropped (reason ``markup``).

    >>> MarkupGuard(policy="escape").clean("a <|im_end|> b")
    'a <\\\\|im_end|> b'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["CHATML_MARKERS", "MarkupGuard", "markers_in_template"]

CHATML_MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")

_MARKER = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>|<</?SYS>>|\[/?[A-Z_]{2,20}\]|<[a-z_]{2,30}>")


def markers_in_template(source: str, extra: Iterable[str] = ()) -> set[str]:
    """Special-token-like strings in a chat template (``<|...|>``, ``[INST]``, ``<s>``,
    ``<start_of_turn>``, ...), plus ``extra`` (its ``bos_token``, ``eos_token``)."""
    found = set(_MARKER.findall(source))
    found.update(t for t in extra if t)
    return found


class MarkupGuard:
    """Escape, strip, or flag chat markers in text; counts what it did."""

    def __init__(self, markers: Iterable[str] = CHATML_MARKERS, *, policy: str = "escape") -> None:
        self.policy = policy
        self.markers = sorted(set(markers), key=lambda m: (-len(m), m))
        self._pattern = re.compile("|".join(re.escape(m) for m in self.markers))
        # a marker can only be present if its first two characters are: a cheap test first
        self._prefixes = tuple({m[:2] for m in self.markers})
        self.hits = 0

    def found(self, text: str) -> bool:
        return any(p in text for p in self._prefixes) and self._pattern.search(text) is not None

    def clean(self, text: str) -> str | None:
        """The safe text, or ``None`` when the policy is ``drop`` and a marker was found."""
        if not any(p in text for p in self._prefixes) or not self._pattern.search(text):
            return text
        self.hits += 1
        if self.policy == "drop":
            return None
        # Repeat: removing a marker can join two halves into a new one.
        while self._pattern.search(text):
            if self.policy == "strip":
                text = self._pattern.sub("", text)
            else:
                text = self._pattern.sub(lambda m: m.group(0)[0] + "\\" + m.group(0)[1:], text)
        return text
