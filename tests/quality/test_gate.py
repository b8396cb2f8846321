"""The quality gate: min_quality_score, missing scores, and the account through pack."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

import qudata
from qudata.config import QualityConfig
from qudata.models import Document
from qudata.quality.gate import QualityGate


def test_low_scores_drop_and_missing_follow_policy() -> None:
    gate = QualityGate(QualityConfig(min_quality_score=0.7))
    low = gate.check(Document(text="x", quality_score=0.5))
    assert low is not None and low.reason == "low_quality"
    assert gate.check(Document(text="x", quality_score=0.7)) is None
    assert gate.check(Document(text="x")) is None  # keep: no score is not a bad score
    drop = QualityGate(QualityConfig(missing_score="drop")).check(Document(text="x"))
    assert drop is not None and drop.reason == "missing_quality_score"


def test_score_policy_fills_the_score_and_components() -> None:
    gate = QualityGate(QualityConfig(missing_score="score"), with_components=True)
    doc = Document(text="Short.")
    assert gate.check(doc) is None
    assert doc.quality_score is not None and doc.quality_score < 0.4
    assert set(doc.metadata["quality_components"]) >= {"length", "repetition"}


@pytest.mark.parametrize("missing", ["keep", "drop", "score"])
def test_pack_accounts_for_quality_drops(tmp_path: Path, missing: str) -> None:
    rows = [
        {"id": "hi", "text": "A good document. " * 30, "quality_score": 0.9},
        {"id": "lo", "text": "A weak document. " * 30, "quality_score": 0.2},
        {"id": "none", "text": "Unscored."},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "quality": {"tokenizer": "none", "min_quality_score": 0.5, "missing_score": missing},
        "pack": {"formats": ["jsonl"], "chatml": {"max_tokens_per_message": None}},
    }
    report = qudata.pack_dataset([str(src)], tmp_path / "out", config=config)
    assert report.balanced()
    expected = {"low_quality": 1} if missing == "keep" else {"low_quality": 2}
    if missing == "drop":
        expected = {"low_quality": 1, "missing_quality_score": 1}
    assert dict(report.dropped) == expected
    rejects = [
        orjson.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_bytes().splitlines()
    ]
    assert sorted(r["id"] for r in rejects) == sorted(
        {"keep": ["lo"], "drop": ["lo", "none"], "score": ["lo", "none"]}[missing]
    )


def test_a_low_quality_copy_does_not_make_the_good_copy_a_duplicate(tmp_path: Path) -> None:
    text = "The same text, long enough to be a document of its own."
    rows = [
        {"id": "low", "text": text, "quality_score": 0.1},
        {"id": "good", "text": text, "quality_score": 0.9},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "quality": {"tokenizer": "none", "min_quality_score": 0.5},
        "pack": {"formats": ["jsonl"]},
    }
    report = qudata.pack_dataset([str(src)], tmp_path / "out", config=config)
    assert dict(report.dropped) == {"low_quality": 1}
    assert report.formats["jsonl"].documents == 1
