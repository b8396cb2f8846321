"""The heuristic scorer: prose high, boilerplate low, always in [0, 1]."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qudata.quality.score import score_text

PROSE = (
    "The json module exposes an API familiar to users of the standard library marshal "
    "and pickle modules. It encodes Python objects as JSON text and decodes them again.\n\n"
    "Encoding basic Python object hierarchies is simple: call dumps with the object, and "
    "the function returns a string. Decoding works the other way round, with loads.\n\n"
    "Each function takes keyword arguments that change how the text is produced, such as "
    "the indentation, the separators, and whether keys are sorted."
)


def test_clean_prose_scores_high() -> None:
    result = score_text(PROSE)
    assert result.score > 0.7
    assert set(result.components) == {
        "length",
        "word_length",
        "alphabetic",
        "symbols",
        "repetition",
        "lines",
    }
    assert all(0.0 <= v <= 1.0 for v in result.components.values())


def test_boilerplate_scores_low() -> None:
    menus = "Home | About | Contact | Login\n" * 30
    stuffing = "buy cheap watches " * 200
    symbols = "#### ### ... ### !!! @@@ " * 40
    repeated = "Click here to subscribe to our newsletter.\n" * 40
    for text in (menus, stuffing, symbols, repeated, "Five words only here now."):
        assert score_text(text).score < 0.4, text[:40]


def test_empty_text_scores_zero_and_is_deterministic() -> None:
    assert score_text("").score == 0.0
    assert score_text("   \n").score == 0.0
    assert score_text(PROSE) == score_text(PROSE)


@given(st.text(max_size=400))
def test_any_text_scores_within_bounds(text: str) -> None:
    result = score_text(text)
    assert 0.0 <= result.score <= 1.0
