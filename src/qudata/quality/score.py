"""A heuristic quality score in [0, 1], for documents that arrive without one.

Components follow the spirit of the Gopher rules (Rae et al., 2021) and the C4
filters (Raffel et al., 2020); each is 1.0 inside the accepted range and falls
off linearly outside it:

* ``length``: 50 to 100,000 words (Gopher); shorter texts ramp down to 0 at 5 words.
* ``word_length``: mean word length 3 to 10 characters (Gopher).
* ``alphabetic``: at least 80% of words contain a letter (Gopher).
* ``symbols``: at most 0.1 ``#`` or ``...`` per word (Gopher).
* ``repetition``: duplicate lines at most 30% of lines, and the most common word
  trigram at most 18% of the words' characters (Gopher).
* ``lines``: lines ending in terminal punctuation (C4), at most 90% bullet lines and
  at most 30% lines ending in an ellipsis (Gopher).

The score is the weighted geometric mean of the components, so one very bad
component pulls the document down.

    >>> score_text("Hello.").score < 0.4
    True
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["QualityScore", "score_text"]

_WEIGHTS = {
    "length": 1.0,
    "word_length": 0.5,
    "alphabetic": 1.0,
    "symbols": 0.5,
    "repetition": 1.0,
    "lines": 1.0,
}
_BULLETS = ("-", "*", "•", "·", "‣", "◦")


@dataclass(frozen=True, slots=True)
class QualityScore:
    """The score and the components it was made of."""

    score: float
    components: dict[str, float] = field(default_factory=dict)


def _ramp(value: float, low: float, high: float) -> float:
    """0 at ``low``, 1 at ``high`` (either direction), clamped."""
    if low == high:
        return 1.0 if value >= high else 0.0
    return min(1.0, max(0.0, (value - low) / (high - low)))


def score_text(text: str) -> QualityScore:
    """Score one document; empty text scores 0."""
    words = text.split()
    if not words:
        return QualityScore(0.0, dict.fromkeys(_WEIGHTS, 0.0))
    n = len(words)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    mean_word = sum(len(w) for w in words) / n
    alphabetic = sum(any(c.isalpha() for c in w) for w in words) / n
    symbols = (text.count("#") + text.count("...") + text.count("…")) / n
    duplicate_lines = 1 - len(set(lines)) / len(lines)
    trigrams = Counter(zip(words, words[1:], words[2:], strict=False))
    top = trigrams.most_common(1)
    top_share = (sum(len(w) for w in top[0][0]) * top[0][1] / sum(map(len, words))) if top else 0.0
    ending = sum(line[-1] in ".!?\"'”:;)" for line in lines) / len(lines)
    bullets = sum(line.startswith(_BULLETS) for line in lines) / len(lines)
    ellipsis = sum(line.endswith(("...", "…")) for line in lines) / len(lines)
    components = {
        "length": _ramp(n, 5, 50) * (1.0 if n <= 100_000 else 0.5),
        "word_length": _ramp(mean_word, 1.5, 3) if mean_word < 3 else _ramp(mean_word, 15, 10),
        "alphabetic": _ramp(alphabetic, 0.5, 0.8),
        "symbols": _ramp(symbols, 0.3, 0.1),
        "repetition": min(_ramp(duplicate_lines, 0.6, 0.3), _ramp(top_share, 0.4, 0.18)),
        "lines": min(_ramp(ending, 0.0, 0.4), _ramp(bullets, 1.0, 0.9), _ramp(ellipsis, 0.6, 0.3)),
    }
    total = sum(_WEIGHTS.values())
    log_sum = sum(w * math.log(max(components[k], 1e-3)) for k, w in _WEIGHTS.items())
    score = round(math.exp(log_sum / total), 4)
    return QualityScore(min(1.0, max(0.0, score)), {k: round(v, 4) for k, v in components.items()})
