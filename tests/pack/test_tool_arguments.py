"""Tool-call arguments as chat templates expect them: JSON objects by default (rendered
by TRL's Qwen2.5 and Llama-3.1 templates exactly as transformers renders dict
arguments), OpenAI's JSON strings on request; ``datasets`` loads both, values intact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import qudata

CALLS = [
    {"customer_name": "Ana Lima", "items": [{"sku": "A-1", "qty": 2}], "rush": True},
    {"query": "weather", "days": 3, "units": None, "ratio": 0.25},
]


def rows() -> list[dict[str, Any]]:
    out = []
    for number, arguments in enumerate(CALLS):
        call = {"id": f"c{number}", "type": "function",
                "function": {"name": f"f{number}", "arguments": json.dumps(arguments)}}  # fmt: skip
        out.append({
            "messages": [
                {"role": "user", "content": f"Do task {number}."},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": f"c{number}", "content": "done"},
                {"role": "assistant", "content": "Done."},
            ],
            "tools": [{"type": "function", "function": {
                "name": f"f{number}", "description": "a task",
                "parameters": {"type": "object", "properties": {}}}}],
        })  # fmt: skip
    return out


def pack(tmp_path: Path, form: str) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows()), encoding="utf-8")
    out = tmp_path / form
    chatml = {"max_tokens_per_message": None, "tool_arguments": form}
    config = {"quality": {"tokenizer": "none"}, "pack": {"chatml": chatml}}
    qudata.pack_dataset(path, out, config=config, formats=["chatml"])
    return out


def loaded(out: Path) -> Any:
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset(str(out), "chatml", split="train")


def arguments(example: dict[str, Any]) -> Any:
    return example["messages"][1]["tool_calls"][0]["function"]["arguments"]


def test_datasets_loads_both_forms_with_values_intact(tmp_path: Path) -> None:
    as_objects = loaded(pack(tmp_path, "object"))
    assert [arguments(e) for e in as_objects] == CALLS
    as_strings = loaded(pack(tmp_path, "string"))
    assert [json.loads(arguments(e)) for e in as_strings] == CALLS


@pytest.mark.parametrize("name", ["qwen2_5", "llama3_1"])
def test_trl_templates_render_objects_as_transformers_renders_dicts(
    tmp_path: Path, name: str
) -> None:
    from tests.pack.test_chatml_tools import hf_tokenizer

    tokenizer = hf_tokenizer(name)
    for example, source in zip(loaded(pack(tmp_path, "object")), rows(), strict=True):
        text = tokenizer.apply_chat_template(
            example["messages"], tools=example["tools"], tokenize=False
        )
        # the reference: the source messages with dict arguments, as transformers' docs
        # pass them
        reference = [dict(m) for m in source["messages"]]
        call = reference[1]["tool_calls"][0]
        function = {**call["function"], "arguments": json.loads(call["function"]["arguments"])}
        reference[1] = {**reference[1], "tool_calls": [{**call, "function": function}]}
        expected = tokenizer.apply_chat_template(reference, tools=source["tools"], tokenize=False)
        assert text == expected
        assert '\\"' not in text  # no stringified JSON inside the training text
