"""The field-level account: every top-level key mapped, carried or dropped, by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import qudata
from qudata.cli import cli
from qudata.errors import InputError
from qudata.normalize import DocumentNormalizer, Shape

FAST = {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}
HI = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_every_key_has_a_disposition() -> None:
    normalize = DocumentNormalizer()
    normalize({"messages": HI, "category": "a", "conversations": [], "source": "s", "id": 1})
    normalize({"text": "x", "category": "b", "quality_score": 0.5})
    assert normalize.fields.as_dict() == {
        "mapped": {"id": 1, "messages": 1, "quality_score": 1, "source": 1, "text": 1},
        "carried": {"category": 2},
        "dropped": {"conversations": 1},
    }


def test_keys_are_counted_by_their_names_in_the_file() -> None:
    shape = Shape(columns={"prompt": "question", "response": "reply"})
    normalize = DocumentNormalizer(shape=shape)
    normalize({"question": "Hi?", "reply": "Hello.", "extra": 1})
    assert normalize.fields.as_dict()["mapped"] == {"question": 1, "reply": 1}
    assert normalize.fields.as_dict()["carried"] == {"extra": 1}


def test_unknown_keys_fail_names_them() -> None:
    normalize = DocumentNormalizer(unknown_keys="fail")
    with pytest.raises(InputError, match="unknown key\\(s\\) 'category'") as info:
        normalize({"messages": HI, "category": "a", "title": "t"})
    assert info.value.reason == "unknown_key"
    assert normalize({"messages": HI, "title": "t"}).title == "t"  # known keys are mapped


def test_run_account_in_manifest_summary_and_card(tmp_path: Path) -> None:
    path = write(
        tmp_path / "in.jsonl",
        [{"messages": HI, "category": "a"}, {"messages": HI, "category": "b", "extra": [1]}],
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["pack", str(path), "-o", str(out), "-f", "chatml", "--tokenizer", "none",
         "--column", "prompt=instructions"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["input_keys"] == {
        "mapped": {"messages": 2},
        "carried": {"category": 2, "extra": 1},
        "dropped": {},
    }
    assert "input keys: mapped: messages 2; carried: category 2, extra 1" in result.output
    assert "input.columns prompt=instructions: no record has the key 'instructions'" in (
        result.output
    )
    card = (out / "README.md").read_text()
    assert "- Input keys (records): mapped `messages` 2; carried `category` 2, `extra` 1." in card


def test_unknown_keys_warn_is_a_caution(tmp_path: Path) -> None:
    path = write(tmp_path / "in.jsonl", [{"messages": HI, "category": "a"}])
    config = {**FAST, "input": {"unknown_keys": "warn"}}
    report = qudata.pack_dataset(path, tmp_path / "out", config=config, formats=["chatml"])
    assert any("input key 'category' (1 records) is not mapped" in c for c in report.cautions)


def test_unknown_keys_fail_rejects_the_record(tmp_path: Path) -> None:
    path = write(tmp_path / "in.jsonl", [{"messages": HI, "category": "a"}, {"messages": HI}])
    config = {**FAST, "input": {"unknown_keys": "fail"}}
    report = qudata.pack_dataset(path, tmp_path / "out", config=config, formats=["chatml"])
    assert report.dropped == {"unknown_key": 1}
    assert report.input_keys["mapped"] == {"messages": 1}
