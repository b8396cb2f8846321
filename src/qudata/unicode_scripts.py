"""Scripts written without spaces between words, where one character counts as a word.

Chinese (Han), Japanese (kana and Han), Thai, Lao, Khmer and Myanmar text has no space
between words, so a "word" split on whitespace is a whole clause. Decontamination
takes each character of these scripts as a word of its own, and near dedup shingles a
document mostly in them by characters (:func:`unspaced_share`). Korean (Hangul) is
written with spaces and is not among them.

    >>> round(unspaced_share("今天天气很好 ok"), 2)
    0.75
"""

from __future__ import annotations

import re

__all__ = ["UNSPACED", "UNSPACED_RANGES", "unspaced_share"]

#: The code point ranges of the unspaced scripts, as the body of a regex character class.
UNSPACED_RANGES = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # half-width Katakana
    "\U00020000-\U0003134f"  # CJK extensions B to G
)

#: One character of an unspaced script.
UNSPACED = re.compile(f"[{UNSPACED_RANGES}]")


def unspaced_share(text: str) -> float:
    """The share of ``text``'s non-space characters that are of an unspaced script."""
    chars = len("".join(text.split()))
    return len(UNSPACED.findall(text)) / chars if chars else 0.0
