"""Reasoning: ``reasoning_content`` (and LLaMA-Factory v1 ``reasoning`` parts) kept as its
own message field in ChatML, JSONL and Parquet, where Qwen3-style templates read it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import qudata

ROWS = [
    {"messages": [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>add</think>4",
         "reasoning_content": "Two plus two is four."},
    ]},
    {"messages": [
        {"role": "user", "content": [{"type": "text", "value": "Hi"}]},
        {"role": "assistant", "content": [
            {"type": "reasoning", "value": "A greeting: greet back."},
            {"type": "text", "value": "Hello"},
        ]},
    ]},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]},
]  # fmt: skip
REASONING = ["Two plus two is four.", "A greeting: greet back.", None]


def pack(tmp_path: Path, tokenizer: str = "none") -> tuple[Path, Any]:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    config = {
        "quality": {"tokenizer": tokenizer},
        "pack": {"chatml": {"max_tokens_per_message": None}, "jsonl": {"fields": ["messages"]}},
    }
    out = tmp_path / "out"
    report = qudata.pack_dataset(path, out, config=config, formats=["chatml", "jsonl", "parquet"])
    assert report.balanced()
    return out, report


def jsonl(out: Path, fmt: str) -> list[dict[str, Any]]:
    (path,) = sorted((out / fmt).glob("*.jsonl"))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_reasoning_is_its_own_field_in_every_conversation_format(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out, report = pack(tmp_path)
    for fmt in ("chatml", "jsonl"):
        records = jsonl(out, fmt)
        assert [r["messages"][1]["reasoning_content"] for r in records] == REASONING
        # <think> inside content stays content
        assert records[0]["messages"][1]["content"] == "<think>add</think>4"
        assert records[1]["messages"][1]["content"] == "Hello"
    (path,) = sorted((out / "parquet").glob("*.parquet"))
    rows = pq.read_table(path).column("messages").to_pylist()
    assert [r[1]["reasoning_content"] for r in rows] == REASONING
    assert report.formats["chatml"].events["reasoning_messages"] == 2
    assert "message_key_dropped" not in report.formats["chatml"].warnings


def test_reasoning_tokens_are_counted(tmp_path: Path) -> None:
    from qudata.quality.tokens import get_token_counter

    out, report = pack(tmp_path, tokenizer="cl100k_base")
    counter = get_token_counter("cl100k_base")
    expected = sum(counter.count(r) for r in REASONING if r)
    assert report.formats["chatml"].events["reasoning_tokens"] == expected
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["formats"]["chatml"]["events"]["reasoning_tokens"] == expected
    card = (out / "README.md").read_text()
    assert f"`chatml` keeps `reasoning_content` in 2 messages ({expected:,} tokens)." in card


def test_datasets_loads_it_and_qwen3s_template_reads_it(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out, _ = pack(tmp_path)
    ds = datasets.load_dataset(str(out), "chatml", split="train")
    assert [m[1]["reasoning_content"] for m in ds["messages"]] == REASONING
    from tests.pack.test_chatml_tools import hf_tokenizer

    tokenizer = hf_tokenizer("qwen3")
    text = tokenizer.apply_chat_template(ds[0]["messages"], tokenize=False)
    assert "<think>\nTwo plus two is four.\n</think>" in text
