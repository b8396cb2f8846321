"""A heuristic quality score in [0, 1], for documents that arrive without one.

Components follow the spirit of the Gopher rules (Rae et al., 2021, appendix A) and
the C4 filters (Raffel et al., 2020, section 2.2); each is 1.0 inside the accepted
range and falls off linearly outside it:

* ``length``: 50 to 100,000 words (Gopher); ramps from 0 at 5 words to 1 at 50,
  and halves above 100,000. It multiplies the score, so short text cannot score high.
* ``word_length``: mean word length 3 to 10 characters (Gopher); 0 below 1.5 or above 15.
* ``alphabetic``: at least 80% of words contain a letter (Gopher); 0 at 50%.
* ``stop_words``: Gopher wants at least two English stop words; here, stop words
  (English and a few other European languages) are at least 5% of the words, 0 at
  1% (prose has 20-30%, code 5-10%, random letters under 1%).
* ``symbols``: at most 0.1 ``#`` or ellipsis (``...``, ``…``) per word (Gopher); 0 at 0.3.
* ``repetition``: the worst of duplicate lines <= 30% of lines and duplicate
  paragraphs <= 30% of paragraphs (Gopher; 0 at 60%), and the most common word
  2-, 3- and 4-gram covering <= 20%, 18% and 16% of the word characters (Gopher;
  0 at twice that).
* ``lines``: the worst of lines (or, for hard-wrapped text, blank-line separated
  paragraphs) ending in terminal punctuation (C4; 0 at none, 1 from 40%), bullet
  lines <= 90% and lines ending in an ellipsis <= 30% (Gopher).

The score is ``length`` times the weighted geometric mean of the other components
(each floored at 0.001), so one very bad component pulls the whole document down.

    >>> score_text("Hello there.").score < 0.4
    True
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["COMPONENTS", "QualityScore", "score_text"]

_WEIGHTS = {  # of the geometric mean; ``length`` multiplies the result instead
    "word_length": 0.5,
    "alphabetic": 1.0,
    "stop_words": 1.0,
    "symbols": 0.5,
    "repetition": 1.0,
    "lines": 1.0,
}
_KEYS = ("length", *_WEIGHTS)
#: The names of the score components, in the order they are reported.
COMPONENTS = _KEYS
# Gopher's eight English stop words, a few more, and common function words of
# other Latin-script European languages, so that French or German prose is not taken for noise.
_STOP_WORDS = frozenset(
    (
        *("the", "be", "to", "of", "and", "that", "have", "with"),  # Gopher
        *("is", "in", "it", "for", "was", "on", "are", "as"),
        *("de", "la", "le", "les", "et", "des", "du", "un", "une", "est"),  # fr
        *("der", "die", "und", "das", "ist", "nicht", "den"),  # de
        *("el", "los", "las", "que", "en", "del", "por"),  # es
        *("il", "di", "che", "per", "non", "het", "een", "van", "och", "att"),  # it, nl, sv
    )
)
_STRIP = ".,;:!?\"'()[]{}\u00ab\u00bb\u201c\u201d\u2018\u2019"  # with guillemets, curly quotes
_BULLETS = ("-", "*", "•", "·", "‣", "◦", "▪", "\u2013")  # en dash
_TERMINAL = ".!?\"'”:;)\u2019"  # \u2019: closing single quote
_ELLIPSES = ("...", "…")
_NGRAM_LIMITS = {2: 0.20, 3: 0.18, 4: 0.16}
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass(frozen=True, slots=True)
class QualityScore:
    """The score (0..1, 4 decimals) and the components (each 0..1) it was made of.

    >>> QualityScore(0.5, {"length": 1.0}).score
    0.5
    """

    score: float
    components: dict[str, float] = field(default_factory=dict)


def _ramp(value: float, zero: float, one: float) -> float:
    """0 at ``zero``, 1 at ``one`` (either direction), linear between, clamped."""
    if zero == one:
        return 1.0 if value >= one else 0.0
    return min(1.0, max(0.0, (value - zero) / (one - zero)))


def _duplicate_fraction(items: list[str]) -> float:
    """Fraction of ``items`` that repeat an earlier item."""
    return 1.0 - len(set(items)) / len(items) if items else 0.0


def _top_ngram_share(words: list[str], n: int, total_chars: int) -> float:
    """Fraction of word characters covered by the most common word n-gram (if repeated)."""
    if len(words) < n or total_chars == 0:
        return 0.0
    counts = Counter(zip(*(words[i:] for i in range(n)), strict=False))
    gram, count = counts.most_common(1)[0]
    if count < 2:
        return 0.0
    return min(1.0, sum(map(len, gram)) * count / total_chars)


def score_text(text: str) -> QualityScore:
    """Score one document; text without words scores 0.

    >>> prose = "The cat sat on the mat and looked out of the window at the rain."
    >>> score_text(prose).components["length"] < 1.0
    True
    """
    words = text.split()
    if not words:
        return QualityScore(0.0, dict.fromkeys(_KEYS, 0.0))
    n = len(words)
    chars = sum(map(len, words))
    lines = [s for s in (line.strip() for line in text.splitlines()) if s]
    paragraphs = [s for s in (p.strip() for p in _PARAGRAPH_BREAK.split(text)) if s]
    vocab = Counter(words)  # per-word checks run once per distinct word
    alphabetic = sum(c for w, c in vocab.items() if any(ch.isalpha() for ch in w)) / n
    stop_words = sum(c for w, c in vocab.items() if w.lower().strip(_STRIP) in _STOP_WORDS) / n
    symbols = (text.count("#") + text.count("...") + text.count("…")) / n
    ngrams = min(
        _ramp(_top_ngram_share(words, k, chars), 2 * limit, limit)
        for k, limit in _NGRAM_LIMITS.items()
    )
    mean_word = chars / n
    ending = max(
        sum(s[-1] in _TERMINAL for s in lines) / len(lines),
        sum(s[-1] in _TERMINAL for s in paragraphs) / len(paragraphs),  # hard-wrapped prose
    )
    bullets = sum(s.startswith(_BULLETS) for s in lines) / len(lines)
    ellipsis = sum(s.endswith(_ELLIPSES) for s in lines) / len(lines)
    components = {
        "length": _ramp(n, 5, 50) * (1.0 if n <= 100_000 else 0.5),
        "word_length": _ramp(mean_word, 1.5, 3) if mean_word < 3 else _ramp(mean_word, 15, 10),
        "alphabetic": _ramp(alphabetic, 0.5, 0.8),
        "stop_words": _ramp(stop_words, 0.01, 0.05),
        "symbols": _ramp(symbols, 0.3, 0.1),
        "repetition": min(
            _ramp(_duplicate_fraction(lines), 0.6, 0.3),
            _ramp(_duplicate_fraction(paragraphs), 0.6, 0.3),
            ngrams,
        ),
        "lines": min(_ramp(ending, 0.0, 0.4), _ramp(bullets, 1.0, 0.9), _ramp(ellipsis, 0.6, 0.3)),
    }
    log_sum = sum(w * math.log(max(components[k], 1e-3)) for k, w in _WEIGHTS.items())
    mean = math.exp(log_sum / sum(_WEIGHTS.values()))
    score = min(1.0, max(0.0, round(components["length"] * mean, 4)))
    return QualityScore(score, {k: round(v, 4) for k, v in components.items()})
