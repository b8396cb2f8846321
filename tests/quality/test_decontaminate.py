"""Decontamination: benchmark n-grams in a document drop it as ``contaminated``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.config import DecontaminationConfig
from qudata.errors import ConfigError
from qudata.models import Document
from qudata.quality.decontaminate import Decontaminator, normalized_words

DATA = Path(__file__).parent.parent / "data" / "decontamination"
HUMANEVAL = str(DATA / "humaneval_like.jsonl")
GSM = str(DATA / "gsm_like.jsonl.gz")


@pytest.fixture(scope="module")
def check() -> Decontaminator:
    return Decontaminator(DecontaminationConfig(files=[HUMANEVAL, GSM]))


def test_normalisation_splits_punctuation_and_folds_case() -> None:
    assert normalized_words("Hello,  WORLD!\nStraße") == ["hello", ",", "world", "!", "strasse"]


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
    assert drop is not None and drop.extra == {"benchmark": GSM, "item": "line 2"}
    assert "line 2" in drop.detail and GSM in drop.detail


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
        {"id": "gsm", "text": "Natalia sold clips to 48 of her friends in April, and then"},
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
    rejects = [orjson.loads(x) for x in (out / "rejects.jsonl").read_bytes().splitlines()]
    assert [(r["id"], r["item"]) for r in rejects] == [
        ("he", "Toy/0"), ("gsm", "q1"), ("chat", "Toy/1"),
    ]  # fmt: skip
    card = (out / "README.md").read_text()
    assert "Decontaminated against" in card and "gsm_like.jsonl.gz" in card
    assert "contaminated: gsm_like.jsonl.gz" in (out / "report.html").read_text()
