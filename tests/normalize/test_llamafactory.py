"""LLaMA-Factory: v1 records (content parts with ``value``, reasoning and tool_call parts,
``loss_weight``, ``chosen_messages``/``rejected_messages``) and every entry kind of
``data/dataset_info.json``, as it appears there (fixtures made from the published
formats)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import qudata
from qudata.errors import InputError
from qudata.normalize import DocumentNormalizer, Shape

V1 = Path(__file__).parents[1] / "data" / "shapes" / "llamafactory_v1.jsonl"
FAST = {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def normalize(row: dict[str, Any], **input_cfg: Any) -> Any:
    shape = Shape(columns=input_cfg.get("columns", {}), tags=input_cfg.get("tags", {}))
    return DocumentNormalizer(shape=shape)(row)


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("v1") / "out"
    report = qudata.pack_dataset(V1, out, config=FAST, formats=["chatml", "preference"])
    assert report.balanced()
    return out, report


def test_v1_parts_become_messages(packed: tuple[Path, Any]) -> None:
    out, _ = packed
    (path,) = sorted((out / "chatml").glob("*.jsonl"))
    records = {len(r["messages"]): r for r in lines(path) if r["messages"][-1]["content"] != "4"}
    tools = records[5]
    call = tools["messages"][2]
    assert call["content"] is None
    assert call["reasoning_content"] == "I should call the weather tool."
    assert call["tool_calls"] == [{"id": "call_2", "type": "function",
                                   "function": {"name": "get_weather",
                                                "arguments": {"city": "Oslo"}}}]  # fmt: skip
    assert tools["messages"][3]["tool_call_id"] == "call_2"
    assert tools["tools"][0]["function"]["name"] == "get_weather"  # a JSON string, parsed
    assert records[2]["messages"][0]["content"] == "<image>Who is this?"
    assert records[2]["images"] == ["mllm_demo_data/1.jpg"]
    # loss_weight 0 on an assistant turn is OpenAI's weight 0; the defaults leave no trace
    assert [m["weight"] for m in records[4]["messages"]] == [None, 0, None, None]


def test_v1_pairs_and_refusals(packed: tuple[Path, Any]) -> None:
    out, report = packed
    (path,) = sorted((out / "preference").glob("*.jsonl"))
    (pair,) = lines(path)
    assert pair["prompt"] == [{"role": "user", "content": "2 + 2?"}]
    assert [m["content"] for m in pair["chosen"] + pair["rejected"]] == ["4", "5"]
    assert report.dropped == {"unsupported_content": 1, "unsupported_key": 1}
    rejects = {r["id"]: r["detail"] for r in lines(out / "rejects.jsonl") if r["format"] is None}
    assert "content part of type 'text' (keys: text_value, type)" in rejects["v1-bad-part"]
    assert "'loss_weight' is 1.0 on a user turn" in rejects["v1-bad-weight"]
    assert report.input_keys["carried"] == {"extra_info": 1}


# every entry kind of dataset_info.json: (columns, tags, a record, what it must become)
ENTRIES = {
    "alpaca": ({}, {}, {"instruction": "Add.", "input": "2 2", "output": "4"}, "alpaca"),
    "sharegpt_tools": (
        {"messages": "conversations", "tools": "tools"}, {},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hey"}],
         "tools": "[]"},
        "messages",  # columns.messages renames conversations to messages
    ),
    "mllm": (
        {"messages": "messages", "images": "images"},
        {"role_tag": "role", "content_tag": "content", "user_tag": "user",
         "assistant_tag": "assistant"},
        {"messages": [{"role": "user", "content": "<image>Who?"},
                      {"role": "assistant", "content": "Me."}], "images": ["1.jpg"]},
        "messages",
    ),
    "openorca": (
        {"prompt": "question", "response": "response", "system": "system_prompt"}, {},
        {"question": "Q?", "response": "A.", "system_prompt": "Be brief."},
        "alpaca",
    ),
    "ranking_sharegpt": (
        {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}, {},
        {"conversations": [{"from": "human", "value": "Q?"}],
         "chosen": {"from": "gpt", "value": "good"}, "rejected": {"from": "gpt", "value": "bad"}},
        "ranking",
    ),
    "ranking_alpaca_images": (
        {"prompt": "question", "chosen": "chosen", "rejected": "rejected", "images": "image"}, {},
        {"question": "<image>What?", "chosen": "A cat.", "rejected": "A dog.", "image": "c.jpg"},
        "ranking",
    ),
    "kto": (
        {"messages": "messages", "kto_tag": "label"},
        {"role_tag": "role", "content_tag": "content", "user_tag": "user",
         "assistant_tag": "assistant"},
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
         "label": False},
        "messages",
    ),
    "kto_alpaca": (
        {"prompt": "prompt", "response": "completion", "kto_tag": "label"}, {},
        {"prompt": "Q", "completion": "A", "label": True},
        "alpaca",
    ),
    "pretraining": ({"prompt": "text"}, {}, {"text": "A wiki page."}, None),
    "pretraining_content": ({"prompt": "content"}, {}, {"content": "A web page."}, None),
}  # fmt: skip


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_every_dataset_info_entry_kind(entry: str) -> None:
    columns, tags, row, kind = ENTRIES[entry]
    doc = normalize(row, columns=columns, tags=tags)
    assert doc.conversation_kind == kind
    if kind is None:
        assert doc.text == next(iter(row.values()))
    if "images" in columns:
        assert doc.media == {"images": [row[columns["images"]]] if isinstance(
            row[columns["images"]], str) else row[columns["images"]]}  # fmt: skip
    if "kto_tag" in columns:
        assert doc.desirable is row["label"]
    if "system" in columns:
        assert doc.messages[0] == {"role": "system", "content": "Be brief."}


def test_a_label_column_naming_a_missing_key_is_a_caution(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"text": "x"}) + "\n")
    config = {**FAST, "input": {"columns": {"kto_tag": "label"}}}
    report = qudata.pack_dataset(path, tmp_path / "out", config=config, formats=["jsonl"])
    assert any("input.columns kto_tag=label: no record has" in c for c in report.cautions)


def test_part_errors_name_the_parts_keys() -> None:
    with pytest.raises(InputError, match=r"content part of type 'image' \(keys: image, type\)"):
        normalize({"messages": [{"role": "user", "content": [{"type": "image", "image": 3}]}]})
