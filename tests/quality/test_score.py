"""The heuristic scorer: prose high, boilerplate low, always in [0, 1]."""

from __future__ import annotations

import dataclasses
import random
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qudata.quality.score import QualityScore, score_text

KEYS = {"length", "word_length", "alphabetic", "stop_words", "symbols", "repetition", "lines"}

PROSE = (
    "The json module exposes an API familiar to users of the standard library marshal "
    "and pickle modules. It encodes Python objects as JSON text and decodes them again.\n\n"
    "Encoding basic Python object hierarchies is simple: call dumps with the object, and "
    "the function returns a string. Decoding works the other way round, with loads.\n\n"
    "Each function takes keyword arguments that change how the text is produced, such as "
    "the indentation, the separators, and whether keys are sorted."
)
GERMAN = (
    "Die Stadt liegt am Ufer des Flusses und ist seit dem Mittelalter ein wichtiger "
    "Handelsplatz. Im neunzehnten Jahrhundert wurde der Hafen ausgebaut, und die "
    "Bevölkerung wuchs schnell. Heute ist die Altstadt ein beliebtes Ziel für Touristen, "
    "die die Kirchen und die alten Lagerhäuser besuchen wollen. Im Sommer finden auf dem "
    "Marktplatz Konzerte statt, und die Cafés sind bis spät in die Nacht geöffnet."
)


def _gibberish(words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join(
        "".join(rng.choice(letters) for _ in range(rng.randint(2, 14))) for _ in range(words)
    )


@pytest.mark.parametrize(
    "text",
    [
        PROSE,
        GERMAN,
        "\n\n".join(textwrap.fill(p, 60) for p in PROSE.split("\n\n")),  # hard-wrapped
    ],
    ids=["prose", "german", "hard-wrapped"],
)
def test_clean_prose_scores_high(text: str) -> None:
    result = score_text(text)
    assert result.score > 0.7, result
    assert set(result.components) == KEYS
    assert all(0.0 <= v <= 1.0 for v in result.components.values())


@pytest.mark.parametrize(
    "text",
    [
        "Home | About | Contact | Login\n" * 30,
        "\n".join(["Home", "News", "Sport", "Weather", "Search", "More"] * 6),
        "buy cheap watches " * 200,
        "#### ### ... ### !!! @@@ " * 40,
        "Click here to subscribe to our newsletter.\n" * 40,
        (PROSE.split("\n\n")[0] + "\n\n") * 3,
        "\n".join(f"- Item number {i} in the list" for i in range(40)),
        "\n".join(f"Read the story about the {w} everyone is talking about..." for w in "abcd" * 6),
        _gibberish(300),
        _gibberish(300).replace(" ", ". ", 40) + ".",
        "\n".join(" ".join(str(i * j) for j in range(8)) for i in range(30)),
        "Five words only here now.",
    ],
    ids=[
        "menu-pipes",
        "menu-lines",
        "keyword-stuffing",
        "symbol-soup",
        "repeated-lines",
        "repeated-paragraphs",
        "bullets",
        "ellipsis-teasers",
        "gibberish",
        "gibberish-sentences",
        "numbers",
        "five-words",
    ],
)
def test_boilerplate_scores_low(text: str) -> None:
    result = score_text(text)
    assert result.score < 0.4, result
    assert set(result.components) == KEYS


def test_short_text_ramps_up_with_length() -> None:
    words = PROSE.split()
    scores = [score_text(" ".join(words[:k]) + ".").score for k in (5, 10, 20, 35, 50)]
    assert scores == sorted(scores)
    assert scores[0] == 0.0
    assert scores[-1] > 0.7


def test_empty_text_scores_zero_and_is_deterministic() -> None:
    assert score_text("").score == 0.0
    assert score_text("   \n").score == 0.0
    assert set(score_text("").components) == KEYS
    assert score_text(PROSE) == score_text(PROSE)


def test_result_is_frozen() -> None:
    result = score_text(PROSE)
    assert isinstance(result, QualityScore)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.score = 0.0  # type: ignore[misc]


@given(st.text(max_size=400))
def test_any_text_scores_within_bounds(text: str) -> None:
    result = score_text(text)
    assert 0.0 <= result.score <= 1.0
    assert round(result.score, 4) == result.score
    assert set(result.components) == KEYS
    assert all(0.0 <= v <= 1.0 for v in result.components.values())


HOSTILE_PIECES = st.sampled_from(
    ["the", "of", "#", "...", "…", "- item", "* ", "x" * 300, "\n", "\n\n", ".", "1234", "é", " "]
)


@given(pieces=st.lists(HOSTILE_PIECES, max_size=300), repeat=st.integers(1, 20))
def test_hostile_text_scores_within_bounds_and_is_a_valid_quality_score(
    pieces: list[str], repeat: int
) -> None:
    """Repeated lines, bullets, symbols, giant words: the score stays a finite number in
    [0, 1], so a scored document never fails the invalid_quality_score check."""
    from qudata.normalize.document import DocumentNormalizer

    result = score_text(" ".join(pieces) * repeat)
    assert 0.0 <= result.score <= 1.0
    assert all(0.0 <= v <= 1.0 for v in result.components.values())
    doc = DocumentNormalizer()({"text": "t", "quality_score": result.score})
    assert doc.quality_score == result.score
