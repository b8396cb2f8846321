"""Duplicate removal in ``pack``: first copy kept, duplicate_of named, conversations compared."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

import qudata

from .oracle import signatures

BASE = " ".join(f"word{i} appears in sentence number {i // 7}." for i in range(300))


def _pack(tmp_path: Path, rows: list[dict[str, object]], method: str) -> tuple[object, list[dict]]:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / f"out-{method}"
    config = {
        "quality": {"tokenizer": "none"},
        "dedup": {"method": method},
        "pack": {"formats": ["jsonl"]},
    }
    report = qudata.pack_dataset([str(src)], out, config=config)
    rejects = [orjson.loads(x) for x in (out / "rejects.jsonl").read_bytes().splitlines()]
    return report, rejects


def test_exact_keeps_first_and_names_it(tmp_path: Path) -> None:
    rows = [
        {"id": "first", "text": "Hello   World."},
        {"id": "second", "text": "hello world."},
        {"id": "other", "text": "Something else."},
    ]
    report, rejects = _pack(tmp_path, rows, "exact")
    assert report.dropped == {"duplicate_exact": 1}
    assert rejects == [
        {
            "format": None,
            "source": str(tmp_path / "in.jsonl"),
            "line": 2,
            "id": "second",
            "reason": "duplicate_exact",
            "detail": "duplicate of first",
            "duplicate_of": "first",
        }
    ]


def test_near_finds_a_one_word_edit_and_keeps_unrelated(tmp_path: Path) -> None:
    edited = BASE.replace("word150 ", "changed150 ")
    rows = [
        {"id": "a", "text": BASE},
        {"id": "b", "text": edited},
        {"id": "c", "text": "An unrelated short note about the weather today."},
    ]
    report, rejects = _pack(tmp_path, rows, "near")
    assert report.dropped == {"duplicate_near": 1}
    assert rejects[0]["id"] == "b" and rejects[0]["duplicate_of"] == "a"
    # the estimated Jaccard similarity of the two signatures, in the reject
    (_, first), (_, second) = signatures([BASE, edited], 128, 5, 1)
    assert rejects[0]["similarity"] == first.jaccard(second)
    assert 0.8 - 0.04 < rejects[0]["similarity"] < 1
    assert f"(estimated Jaccard similarity {first.jaccard(second):.3f})" in rejects[0]["detail"]
    report_none, _ = _pack(tmp_path, rows, "none")
    assert report_none.dropped == {}


def test_conversations_are_compared_on_their_turns(tmp_path: Path) -> None:
    turns = [
        {"role": "user", "content": "What is JSON?"},
        {"role": "assistant", "content": "A text format for data."},
    ]
    rows = [
        {"id": "c1", "messages": [{"role": "system", "content": "Be brief."}, *turns]},
        {"id": "c2", "messages": [{"role": "system", "content": "Be kind."}, *turns]},
    ]
    report, rejects = _pack(tmp_path, rows, "exact")
    # the default roles are user and assistant: a different system prompt is still a duplicate
    assert report.dropped == {"duplicate_exact": 1}
    assert rejects[0]["duplicate_of"] == "c1"
