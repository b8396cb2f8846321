"""Token budgets in linear time: every part within budget by the exact counter, nothing
lost but whitespace at cuts, paragraphs kept whole when they fit, O(1) counts per part."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qudata.pack.budget import split_to_budget, truncate_to_budget
from qudata.quality.tokens import EstimateCounter, TokenCounter, get_token_counter

CL100K = get_token_counter("cl100k_base")
assert CL100K is not None


class Counting:
    """A counter that records how often it is asked (the cost model of the budget)."""

    def __init__(self, inner: TokenCounter) -> None:
        self.inner = inner
        self.name, self.exact = inner.name, inner.exact
        self.counts = self.ends = 0

    def count(self, text: str) -> int:
        self.counts += 1
        return self.inner.count(text)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        self.counts += len(texts)
        return self.inner.count_batch(texts)

    def token_ends(self, text: str) -> list[int]:
        self.ends += 1
        return self.inner.token_ends(text)


def offsets(text: str, parts: list[str]) -> list[tuple[int, int]]:
    """Where each part lies in ``text``, asserting that only whitespace lies between."""
    spans, pos = [], 0
    for part in parts:
        if not text.startswith(part, pos):
            gap = len(text[pos:]) - len(text[pos:].lstrip())
            assert gap > 0, (text[pos : pos + 40], part[:40])
            pos += gap
            assert text.startswith(part, pos), (text[pos : pos + 40], part[:40])
        spans.append((pos, pos + len(part)))
        pos += len(part)
    assert not text[pos:].strip(), "text lost after the last part"
    return spans


words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Zl", "Zp")),
    min_size=1,
    max_size=12,
).filter(lambda w: w.strip() == w and w)
sentence = st.lists(words, min_size=1, max_size=25).map(lambda ws: " ".join(ws) + ".")
paragraph = st.lists(sentence, min_size=1, max_size=8).map(" ".join)
document = st.lists(paragraph, min_size=1, max_size=12).map("\n\n".join)
anything = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=3000
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(document, anything), budget=st.integers(min_value=1, max_value=200))
def test_parts_fit_and_join_back_with_few_counts(text: str, budget: int) -> None:
    counter = Counting(CL100K)
    parts = split_to_budget(text, budget, counter)
    assert counter.ends == 1  # the text is tokenized once
    # each part is counted O(1) times: its guess (in a batch), and a few shrinks when a cut
    # changed the tokenization (rare in real text, frequent in random Unicode)
    assert counter.counts <= 6 * len(parts) + 4
    offsets(text, parts)
    for part in parts:
        # a part over budget is only ever one character that alone exceeds it
        assert CL100K.count(part) <= budget or len(part) == 1, part


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(document, anything), budget=st.integers(min_value=1, max_value=200))
def test_truncate_is_the_first_part(text: str, budget: int) -> None:
    counter = Counting(CL100K)
    prefix = truncate_to_budget(text, budget, counter)
    assert counter.ends == 1 and counter.counts <= 4
    assert prefix == split_to_budget(text, budget, CL100K)[0]
    assert text.startswith(prefix)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paragraphs=st.lists(paragraph, min_size=2, max_size=12), budget=st.integers(30, 300))
def test_paragraphs_that_fit_are_never_cut(paragraphs: list[str], budget: int) -> None:
    fitting = [p for p in paragraphs if CL100K.count(p) <= budget - 2]
    if len(fitting) < 2:
        return
    text = "\n\n".join(fitting)
    parts = split_to_budget(text, budget, CL100K)
    ends = {m.start() for m in re.finditer(r"\n\n", text)} | {len(text)}
    for _, end in offsets(text, parts):
        assert end in ends  # every cut is at a paragraph boundary


def test_a_text_within_budget_is_returned_whole_and_counted_once() -> None:
    counter = Counting(CL100K)
    text = "Short text.\n\n  with odd   spacing "
    assert split_to_budget(text, 100, counter) == [text]
    assert (counter.ends, counter.counts) == (1, 0)


def test_cuts_prefer_paragraphs_then_sentences_then_spaces() -> None:
    text = "Alpha beta gamma. Delta epsilon.\n\nZeta eta theta iota kappa lambda mu."
    assert split_to_budget(text, 9, CL100K) == [
        "Alpha beta gamma. Delta epsilon.",
        "Zeta eta theta iota kappa lambda mu.",
    ]
    assert split_to_budget(text, 5, CL100K)[:2] == ["Alpha beta gamma.", "Delta epsilon."]
    assert split_to_budget(text, 8, CL100K)[1:] == ["Zeta eta theta iota kappa lambda", "mu."]
    words = split_to_budget("one two three four five six seven eight", 3, CL100K)
    assert words == ["one two three", "four five six", "seven eight"]


def test_whitespace_inside_parts_is_kept_exactly() -> None:
    text = "Line one.\nLine two.\n\n\n   Indented   text\twith tabs.\n\nLast."
    parts = split_to_budget(text, 12, CL100K)
    assert len(parts) > 1
    for start, end in offsets(text, parts):
        assert text[start:end] in text
    assert any("Indented   text\twith tabs." in p for p in parts)


def test_multibyte_characters_are_never_split() -> None:
    text = "😀" * 50 + " 日本語のテキスト" * 40 + " Ünïcödé" * 30
    for budget in (1, 2, 3, 7, 50):
        parts = split_to_budget(text, budget, CL100K)
        offsets(text, parts)
        for part in parts:
            part.encode("utf-8")  # no lone surrogates, no broken characters
            assert CL100K.count(part) <= budget or len(part) == 1


def test_estimate_counter_budgets_too() -> None:
    estimate = EstimateCounter()
    text = ("Some words in a sentence. " * 40 + "\n\n") * 20 + "ünïcödé " * 300
    parts = split_to_budget(text, 100, estimate)
    offsets(text, parts)
    assert len(parts) > 10
    assert all(estimate.count(p) <= 100 for p in parts)
    assert len(estimate.token_ends(text)) == estimate.count(text)


@pytest.mark.parametrize("text", ["", "a", "hello world", "ünï 😀 日本", "x" * 1000])
def test_token_ends_have_one_end_per_token_and_end_at_the_text_end(text: str) -> None:
    for counter in (CL100K, EstimateCounter()):
        ends = list(counter.token_ends(text))
        assert len(ends) == counter.count(text)
        assert ends == sorted(ends)
        if ends:
            assert ends[-1] == len(text)


def test_hf_tokenizer_budgets(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    tokenizer = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = ["the quick brown fox jumps over the lazy dog", "ünïcödé 日本語 😀"] * 50
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    counter = get_token_counter(str(path))
    assert counter is not None
    text = ("The quick brown fox. ünïcödé 日本語 😀 jumps.\n\n" * 30).strip()
    ends = counter.token_ends(text)
    assert len(ends) == counter.count(text) and ends[-1] == len(text)
    parts = split_to_budget(text, 20, counter)
    offsets(text, parts)
    assert all(counter.count(p) <= 20 for p in parts)


def test_cost_is_linear_in_the_text_length() -> None:
    """Counted in calls, not seconds: one tokenization, then O(1) counts per part."""
    text = ("A sentence of plain words. " * 30 + "\n\n") * 400  # ~330 KB
    counter = Counting(CL100K)
    parts = split_to_budget(text, 512, counter)
    assert counter.ends == 1
    assert counter.counts <= len(parts) + 2
    assert sum(len(p) for p in parts) > 0.95 * len(text.replace("\n\n", ""))


@settings(max_examples=400, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(["a", "b.", " ", "\n", "\n\n", "\t", "\u3000", "\u2028", "\n \n"]),
        max_size=200,
    ).map("".join),
    data=st.data(),
)
def test_paragraph_breaks_found_back_from_the_window_end_are_the_regex_spans(
    text: str, data: st.DataObject
) -> None:
    """The backward search gives the regex's last break starting in ``(low, high]``,
    also where it looks back past many single line ends (its fallback)."""
    from qudata.pack import budget

    if not text:
        return
    regex, found = budget._Cuts(budget._PARAGRAPH, text), budget._Paragraphs(text)
    for _ in range(8):
        high = data.draw(st.integers(0, len(text) - 1))
        low = data.draw(st.integers(-1, high))
        assert found.last(low, high) == regex.last(low, high), (low, high)


@settings(max_examples=400, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(["a", ".", "!", "?", "\u3002", "\uff1f", " ", "\n", "\t", "1.5", "..."]),
        max_size=200,
    ).map("".join),
    data=st.data(),
)
def test_sentence_ends_found_back_from_the_window_end_are_the_regex_spans(
    text: str, data: st.DataObject
) -> None:
    from qudata.pack import budget

    if not text:
        return
    regex, found = budget._Cuts(budget._SENTENCE, text), budget._Sentences(text)
    for _ in range(8):
        high = data.draw(st.integers(0, len(text) - 1))
        low = data.draw(st.integers(-1, high))
        assert found.last(low, high) == regex.last(low, high), (low, high)
