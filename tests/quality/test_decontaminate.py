# ruff: noqa: SIM905, RUF001  (word lists as strings; CJK punctuation is the point)
"""Decontamination: benchmark n-grams in a document drop it as ``contaminated``."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qudata
from qudata.config import DecontaminationConfig
from qudata.errors import ConfigError
from qudata.models import Document
from qudata.quality import decontaminate
from qudata.quality.decontaminate import Decontaminator, normalized_words

sys.path.insert(0, str(Path(__file__).parent))
from gsm_like import code_snippets, math_problems

DATA = Path(__file__).parent.parent / "data" / "decontamination"
HUMANEVAL = str(DATA / "humaneval_like.jsonl")
GSM = str(DATA / "gsm_like.jsonl.gz")


@pytest.fixture(scope="module")
def check() -> Decontaminator:
    return Decontaminator(DecontaminationConfig(files=[HUMANEVAL, GSM]))


def test_words_are_letters_and_digits_casefolded() -> None:
    assert normalized_words("Hello,  WORLD!\nStraße") == ["hello", "world", "strasse"]
    # formulas, code and markup make no words of their punctuation
    assert normalized_words("48 / 2 = <<48/2=24>>24\n#### 24") == "48 2 48 2 24 24 24".split()
    assert normalized_words("for i in range(1, n + 1):") == "for i in range 1 n 1".split()
    assert normalized_words("<b>snake_case</b> x**2") == "b snake case b x 2".split()


def test_words_of_other_scripts() -> None:
    # combining marks stay in their word; unspaced scripts give one word per character
    assert normalized_words("नमस्ते दुनिया।") == ["नमस्ते", "दुनिया"]
    assert normalized_words("Cafe\u0301 e\u0301te\u0301") == ["café", "été"]
    assert normalized_words("今天天气很好，GPT-4!") == [*"今天天气很好", "gpt", "4"]
    assert normalized_words("ภาษาไทย") == list("ภาษาไทย")


@pytest.mark.parametrize(
    "text",
    [
        # exact copy inside a longer document
        "Intro. Return the sum of two integers a and b, and raise a ValueError when "
        "either one is negative. Outro.",
        # re-wrapped and in another case
        "RETURN THE SUM OF TWO\n   integers A and B,\nand raise a valueerror when either",
        # the gzipped benchmark, by its id, with different spacing around punctuation
        "natalia sold clips to 48 of her friends in april , and then she sold half",
    ],
)
def test_documents_holding_a_benchmark_run_are_dropped(check: Decontaminator, text: str) -> None:
    drop = check.check(Document(text=text, id="d"))
    assert drop is not None and drop.reason == "contaminated"
    assert drop.extra is not None and drop.extra["item"] in {"Toy/0", "q1"}


def test_the_item_id_falls_back_to_the_line_number(check: Decontaminator) -> None:
    drop = check.check(
        Document(text="a robe takes two bolts of blue fiber and half that much white")
    )
    assert drop is not None and drop.extra == {
        "benchmark": GSM,
        "item": "line 2",
        "benchmark_line": 2,
        "benchmark_field": "question",
        "ngram": "a robe takes two bolts of blue fiber and half that much white",
        "field": "text",
    }
    assert drop.detail == (
        'shares the 13-word n-gram "a robe takes two bolts of blue fiber and half that '
        f'much white" with {GSM} item line 2 (question; found in text)'
    )


@pytest.mark.parametrize(
    "text",
    [
        "Return the sum of two integers a and b, or raise a KeyError instead.",  # 10 shared
        "Count the vowels in a string and return something else entirely.",
        "Too short to match.",  # the benchmark item itself is under 8 words: ignored
        "",
    ],
)
def test_fewer_shared_words_are_kept(check: Decontaminator, text: str) -> None:
    assert check.check(Document(text=text)) is None


def test_a_short_item_is_matched_whole() -> None:
    check = Decontaminator(DecontaminationConfig(files=[HUMANEVAL], fields=["prompt"], ngram=20))
    # Toy/1's prompt has 17 words: shorter than 20, so it must appear whole
    whole = "x: count the vowels in a string, ignoring case, and return the count as an "
    assert check.check(Document(text=whole + "integer value.")) is not None
    assert check.check(Document(text=whole + "integer")) is None


def test_only_the_configured_fields_are_indexed() -> None:
    check = Decontaminator(DecontaminationConfig(files=[HUMANEVAL], fields=["canonical_solution"]))
    assert (
        check.check(
            Document(
                text="Return the sum of two integers a and b, and raise a "
                "ValueError when either one is negative."
            )
        )
        is None
    )


def test_conversations_are_checked_message_by_message(check: Decontaminator) -> None:
    messages = [
        {"role": "user", "content": "Please count the vowels in a string, ignoring case, and"},
        {"role": "assistant", "content": "return the count as an integer value."},
    ]
    # the run crosses the two messages: no single message holds 13 of its words
    assert check.check(Document(text="", messages=messages)) is None
    messages[0]["content"] += " return the count as an integer value."
    assert check.check(Document(text="", messages=messages)) is not None


def test_a_missing_or_bad_benchmark_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="decontamination"):
        Decontaminator(DecontaminationConfig(files=[str(tmp_path / "missing.jsonl")]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\nnot json\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2"):
        Decontaminator(DecontaminationConfig(files=[str(bad)]))


def test_pack_drops_counts_per_file_and_balances(tmp_path: Path) -> None:
    docs: list[dict[str, Any]] = [
        {"id": "clean", "text": "A clean document about rivers and mountains and the sea."},
        {"id": "he", "text": "return the sum of two integers a and b, and raise a ValueError"},
        {"id": "gsm", "text": "Natalia sold clips to 48 of her friends in April, and then she"},
        {"id": "chat", "messages": [
            {"role": "user", "content": "Count the vowels in a string, ignoring case, and "
                                        "return the count as an integer value."},
            {"role": "assistant", "content": "Sure."}]},
    ]  # fmt: skip
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    config = {"quality": {"decontamination": {"files": [HUMANEVAL, GSM]}}}
    out = tmp_path / "out"
    report = qudata.pack_dataset(source, out, config=config)
    assert report.balanced()
    assert report.dropped == {"contaminated": 3}
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["counts"]["contaminated"] == {HUMANEVAL: 2, GSM: 1}
    assert manifest["decontamination"] == {
        HUMANEVAL: {"documents": 2, "items": 2, "top_items": {"Toy/0": 1, "Toy/1": 1}},
        GSM: {"documents": 1, "items": 1, "top_items": {"q1": 1}},
    }
    rejects = [orjson.loads(x) for x in (out / "rejects.jsonl").read_bytes().splitlines()]
    assert [(r["id"], r["item"], r["benchmark_field"], r["field"]) for r in rejects] == [
        ("he", "Toy/0", "prompt", "text"),
        ("gsm", "q1", "question", "text"),
        ("chat", "Toy/1", "prompt", "messages[0].content"),
    ]  # fmt: skip
    assert rejects[1]["ngram"] == "natalia sold clips to 48 of her friends in april and then she"
    assert (rejects[1]["benchmark"], rejects[1]["benchmark_line"]) == (GSM, 1)
    assert (rejects[1]["source"], rejects[1]["line"]) == (str(source), 3)
    card = (out / "README.md").read_text()
    assert f"`{GSM}` (1 dropped, 1 benchmark item matched)" in card
    assert f"`{HUMANEVAL}` (2 dropped, 2 benchmark items matched)" in card
    assert "contaminated: gsm_like.jsonl.gz (1 item)" in (out / "report.html").read_text()
    assert report.cautions == []


def test_a_benchmark_file_with_nothing_to_match_is_named_in_a_warning(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    short = tmp_path / "short.jsonl"
    short.write_text('{"question": "Too short to match anything."}\n')
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "A clean document about rivers and mountains."}\n')
    files = [str(empty), HUMANEVAL, str(short)]
    config = {"quality": {"decontamination": {"files": files}}}
    report = qudata.pack_dataset(source, tmp_path / "out", config=config)
    assert report.cautions == [
        f"quality.decontamination: {path} gives no n-gram to match (it is empty, or no field "
        "has 8 words): nothing was checked against it"
        for path in (empty, short)
    ]
    # a field name that no record has is the same mistake
    config = {"quality": {"decontamination": {"files": [GSM], "fields": ["questoin"]}}}
    report = qudata.pack_dataset(source, tmp_path / "out2", config=config)
    assert report.cautions == [
        f"quality.decontamination: {GSM} gives no n-gram to match (it is empty, or no field "
        "of questoin has 8 words): nothing was checked against it"
    ]


# --- GSM8K-like and code: precision and recall ---------------------------------------


@pytest.fixture(scope="module")
def gsm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Decontaminator, list[dict[str, str]]]:
    """A GSM8K-like test split (1,319 items, as GSM8K's) as the benchmark file."""
    test = [{"id": f"test-{i}", **r} for i, r in enumerate(math_problems(1319, seed=2))]
    path = tmp_path_factory.mktemp("gsm") / "gsm_test.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in test))
    return Decontaminator(DecontaminationConfig(files=[str(path)])), test


def _row(record: dict[str, str]) -> Document:
    return Document(text=record["question"] + "\n" + record["answer"])


def test_gsm_like_train_keeps_99_percent_against_its_test_split(
    gsm: tuple[Decontaminator, list[dict[str, str]]],
) -> None:
    check, _ = gsm
    train = list(math_problems(7473, seed=1))  # other problems, the same formulas
    drops = [d for r in train if (d := check.check(_row(r))) is not None]
    assert len(drops) <= 0.01 * len(train), [d.detail for d in drops[:5]]
    # no match is made of arithmetic: every matched n-gram is mostly words
    for drop in drops:
        assert drop.extra is not None
        words = drop.extra["ngram"].split()
        assert sum(not w.isdigit() for w in words) * 2 >= len(words)


def test_with_punctuation_as_words_the_same_fixture_matched_almost_everything(
    gsm: tuple[Decontaminator, list[dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixture reproduces the failure it guards against (issue 24: 4,014 of 7,473
    GSM8K train rows dropped when punctuation marks counted as words)."""
    punctuated = re.compile(r"\w+|[^\w\s]")
    monkeypatch.setattr(
        decontaminate, "normalized_words", lambda t: punctuated.findall(t.casefold())
    )
    monkeypatch.setattr(decontaminate, "MIN_LETTER_SHARE", 0.0)
    config = DecontaminationConfig(files=gsm[0].files)
    old = Decontaminator(config)
    train = list(math_problems(1000, seed=1))
    assert sum(old.check(_row(r)) is not None for r in train) > 900


def _reworded(record: dict[str, str], how: int) -> str:
    text = record["question"] + "\n" + record["answer"]
    if how == 0:  # verbatim inside a longer document
        return "Here is a practice problem.\n\n" + text + "\n\nGood luck!"
    if how == 1:  # case and punctuation changed, annotations stripped, re-wrapped
        text = re.sub(r"<<[^>]*>>", " ", text).upper()
        return re.sub(r"[,.?!$#]", " ; ", text).replace(" ", "\n", 5)
    if how == 2:  # the question alone, in other quotes
        return f"«{record['question']}»"
    return text.replace(", ", " - ").replace(". ", "... ").lower()


def test_planted_test_items_are_all_caught(
    gsm: tuple[Decontaminator, list[dict[str, str]]],
) -> None:
    check, test = gsm
    planted = test[::13]  # 102 items, every kind of problem
    for k, record in enumerate(planted):
        drop = check.check(Document(text=_reworded(record, k % 4)))
        assert drop is not None, (k % 4, record)
        assert drop.extra is not None and drop.extra["item"] == record["id"]
    # in a conversation: the question in the user turn is enough
    record = planted[0]
    messages = [
        {"role": "user", "content": record["question"]},
        {"role": "assistant", "content": "Let me think."},
    ]
    drop = check.check(Document(text="", messages=messages))
    assert drop is not None and drop.extra is not None
    assert (drop.extra["field"], drop.extra["benchmark_field"]) == (
        "messages[0].content",
        "question",
    )


HUMANEVAL_LIKE = [
    {"task_id": "Code/0", "prompt": "def sum_of_cubes(n):\n    \"\"\"Return the sum of the "
     "cubes of the integers from 1 to n inclusive, or 0 when n is not positive.\"\"\"\n",
     "canonical_solution": "    total = 0\n    for i in range(1, n + 1):\n        total += i ** 3\n"
     "    return total\n"},
    {"task_id": "Code/1", "prompt": "def count_divisors(n):\n    \"\"\"Count how many integers "
     "between 1 and n divide n without a remainder, for a positive n.\"\"\"\n",
     "canonical_solution": "    count = 0\n    for i in range(1, n + 1):\n        if n % i == 0:\n"
     "            count += 1\n    return count\n"},
    {"task_id": "Code/2", "prompt": "import sys\n\n\ndef main():\n    \"\"\"Read numbers from the "
     "command line and print their product, one line per argument given.\"\"\"\n",
     "canonical_solution": "    product = 1\n    for arg in sys.argv[1:]:\n        product *= "
     "int(arg)\n    print(product)\n\n\nif __name__ == \"__main__\":\n    main()\n"},
]  # fmt: skip


def test_code_boilerplate_does_not_match_but_a_copied_prompt_does(tmp_path: Path) -> None:
    path = tmp_path / "humaneval_like.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in HUMANEVAL_LIKE))
    check = Decontaminator(DecontaminationConfig(files=[str(path)]))
    # 500 CodeAlpaca-like answers: the same loops and __main__ blocks, other functions
    snippets = list(code_snippets(500, seed=3))
    assert sum("for i in range(1, n + 1):" in s["output"] for s in snippets) > 200
    drops = [d for s in snippets if (d := check.check(Document(text=s["output"]))) is not None]
    assert drops == []
    copied = snippets[0]["output"] + "\n# task:\n" + HUMANEVAL_LIKE[1]["prompt"].upper()
    drop = check.check(Document(text=copied))
    assert drop is not None and drop.extra is not None
    assert (drop.extra["item"], drop.extra["benchmark_field"]) == ("Code/1", "prompt")


def test_chinese_items_are_matched_by_characters(tmp_path: Path) -> None:
    path = tmp_path / "ceval_like.jsonl"
    item = {
        "id": "c1",
        "question": "下列关于光合作用的说法，哪一项是正确的？植物在黑暗中也能进行光合作用。",
    }
    path.write_bytes(orjson.dumps(item) + b"\n")
    check = Decontaminator(DecontaminationConfig(files=[str(path)]))
    copied = "练习题：下列关于光合作用的说法哪一项是正确的 植物在黑暗中也能进行光合作用"
    drop = check.check(Document(text=copied))
    assert drop is not None and drop.extra is not None
    assert drop.extra["ngram"] == "下 列 关 于 光 合 作 用 的 说 法 哪 一"
    other = "光合作用是植物利用光能把二氧化碳和水转化为有机物的过程，需要叶绿素参与。"
    assert check.check(Document(text=other)) is None


# --- the fast paths give the words, n-grams and matches of the plain definitions -----

_ALPHABET = (
    "aZ09_ -.,;\n\t<>=/+'\"ÉéßİıΣσςДд"  # ASCII, Latin, casefold changes, Greek, Cyrillic
    "\u0301\u0308\u05b0\u064b\u0915\u093f\u0964"  # combining marks, Devanagari, danda
    "\u4e2d\u6587\u3042\u0e01\uff21\u00a0\u2003\u00b2\u2460"  # unspaced scripts, spaces, digits
)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=60) | st.text(max_size=60))
def test_normalized_words_equal_the_single_pattern(text: str) -> None:
    """The ASCII and spaced-script paths find what the one full pattern finds."""
    import unicodedata

    folded = unicodedata.normalize("NFC", text).casefold()
    assert normalized_words(text) == decontaminate._WORDS.findall(folded)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), max_size=40),
    st.lists(st.integers(1, 12), min_size=1, max_size=4, unique=True),
)
def test_ngrams_grown_from_shorter_ones_equal_the_direct_polynomial(
    words: list[int], lengths: list[int]
) -> None:
    import numpy as np

    hashed = np.array(words, np.uint64)
    grams, done = np.zeros(len(words), np.uint64), 0
    for n in sorted(lengths):
        grams = decontaminate._longer(grams, hashed, done, n)
        done = n
        assert grams.tolist() == decontaminate._grams(hashed, n).tolist()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=300, unique=True),
    st.lists(st.integers(0, 2**64 - 1), max_size=200),
    st.randoms(use_true_random=False),
)
def test_the_index_filter_never_hides_a_match(keys: list[int], others: list[int], rnd: Any) -> None:
    """``first`` finds the first n-gram that is a key, as a plain search does, whatever
    the keys' low bits (the filter only rules out)."""
    import numpy as np

    grams = others + rnd.sample(keys, min(len(keys), 3))
    rnd.shuffle(grams)
    owners = np.arange(len(keys), dtype=np.int32)
    index = decontaminate._Index([np.array(keys, np.uint64)], [owners])
    found = index.first(np.array(grams, np.uint64))
    want = next(((i, keys.index(g)) for i, g in enumerate(grams) if g in keys), None)
    assert found == want
