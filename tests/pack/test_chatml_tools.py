"""Tool calling in ChatML (issue 12): ``tools`` and ``parallel_tool_calls`` on the record,
``render: chatml`` in the Hermes/Qwen convention, ``chat_template`` with ``tools=``
byte-identical to ``transformers``' ``apply_chat_template(messages, tools=tools)``."""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from qudata.pack import ChatMLFormatter

SHAPES = Path(__file__).parent.parent / "data" / "shapes"
TOKENS = {
    "qwen2_5": ("<|endoftext|>", "<|im_end|>"),
    "qwen3": ("<|endoftext|>", "<|im_end|>"),
    "llama3_1": ("<|begin_of_text|>", "<|eot_id|>"),
}
QWEN_DEFAULT = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\n"
)


def stock(name: str) -> Path:
    """A model's own chat template, as the installed ``trl`` package ships it (the model
    repositories' originals; read from there, not copied into this repository)."""
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("trl is not installed (CI installs it)")
    path = Path(spec.submodule_search_locations[0], "chat_templates", f"{name}.jinja")
    if not path.is_file():
        pytest.skip(f"this trl has no {name} template")
    return path


def rows(name: str) -> list[dict[str, Any]]:
    lines = (SHAPES / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def formatter(**options: Any) -> ChatMLFormatter:
    return ChatMLFormatter({"quality": {"tokenizer": "none"}}, **options)


@cache
def hf_tokenizer(name: str) -> Any:
    """A PreTrainedTokenizerFast over a tiny WordLevel model (no hub), ``name``'s template."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    bos, eos = TOKENS[name]
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, bos: 1, eos: 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token="[UNK]"
    )
    fast.chat_template = stock(name).read_text(encoding="utf-8")
    return fast


def test_tools_and_parallel_calls_are_kept_in_openai_form() -> None:
    parallel, undeclared = formatter().format_documents(rows("openai_tools.jsonl"))
    assert list(parallel) == ["messages", "tools", "parallel_tool_calls"]
    assert [t["function"]["name"] for t in parallel["tools"]] == ["get_weather", "get_time"]
    assert all(t["type"] == "function" for t in parallel["tools"])
    assert parallel["parallel_tool_calls"] is True
    # every message has every key of the output (null where absent): compare what is set
    system, user, call, result_a, result_b, answer = (
        {k: v for k, v in m.items() if v is not None} for m in parallel["messages"]
    )
    assert answer["content"].startswith("4 °C")
    assert system == {"role": "system", "content": "Answer with the tools."}  # developer
    assert user["content"] == "Weather and time in Oslo?"  # text parts joined
    assert [c["id"] for c in call["tool_calls"]] == ["call_a", "call_b"]
    assert call["tool_calls"][1]["function"] == {
        "name": "get_time",
        "arguments": {"city": "Oslo"},  # the JSON object, as templates expect it
    }
    assert (result_a["tool_call_id"], result_b["tool_call_id"]) == ("call_a", "call_b")
    assert "parallel_tool_calls" not in undeclared


def test_a_call_to_an_undeclared_function_is_counted_not_fixed() -> None:
    fmt = formatter()
    _, undeclared = fmt.format_documents(rows("openai_tools.jsonl"))
    assert fmt.stats.warnings == {"undeclared_tool_call": 1}
    assert undeclared["messages"][1]["tool_calls"][0]["function"]["name"] == "get_time"


def test_render_chatml_writes_hermes_tool_calls() -> None:
    (record, _) = formatter(render="chatml").format_documents(rows("openai_tools.jsonl"))
    text = record["text"]
    assert text.startswith("<|im_start|>system\nAnswer with the tools.\n\n# Tools\n\n")
    assert '\n{"type": "function", "function": {"name": "get_weather", ' in text
    assert (
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call>'
        "<|im_end|>\n"
        '<|im_start|>user\n<tool_response>\n{"temp_c": 4}\n</tool_response>\n'
        '<tool_response>\n{"time": "14:05"}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n4 °C, and it is 14:05 in Oslo.<|im_end|>\n"
    ) in text
    assert "<|im_start|>assistant\n<|im_end|>" not in text  # never an empty turn


@pytest.mark.parametrize("name", ["openai_tools.jsonl", "sharegpt_tools.jsonl"])
def test_render_chatml_is_qwen2_5s_template(name: str) -> None:
    """render: chatml is byte-identical to Qwen2.5's template (which adds its default system
    turn when a record has none)."""
    records = formatter(render="chatml").format_documents(rows(name)[:1] + rows(name)[1:2])
    assert records
    for record in records:
        tools = record.get("tools")
        expected = hf_tokenizer("qwen2_5").apply_chat_template(
            record["messages"], tools=tools, tokenize=False
        )
        if record["messages"][0]["role"] != "system":
            expected = expected.removeprefix(QWEN_DEFAULT)  # no tools
            expected = expected.replace(QWEN_DEFAULT[19:-11] + "\n\n", "", 1)  # tools
        assert record["text"] == expected


@pytest.mark.parametrize("name", ["qwen2_5", "qwen3", "llama3_1"])
def test_chat_template_with_tools_is_byte_identical_to_transformers(name: str) -> None:
    bos, eos = TOKENS[name]
    fmt = formatter(
        chat_template=str(stock(name)),
        template_vars={"bos_token": bos, "eos_token": eos},
    )
    source = rows("openai_tools.jsonl") + rows("sharegpt_tools.jsonl")[:1]
    if name == "llama3_1":  # Llama 3.1 takes one call per message (it raises otherwise)
        source = source[1:]
    records = fmt.format_documents(source)
    assert len(records) == len(source)
    for record in records:
        assert record.get("tools")
        # tool-call arguments as objects, as transformers' templates expect them
        expected = hf_tokenizer(name).apply_chat_template(
            record["messages"], tools=record["tools"], tokenize=False
        )
        assert record["text"] == expected
        assert record["tools"][0]["function"]["name"] in record["text"]


def test_llama3_1_refuses_parallel_calls_as_a_template_error() -> None:
    bos, eos = TOKENS["llama3_1"]
    fmt = formatter(
        chat_template=str(stock("llama3_1")),
        template_vars={"bos_token": bos, "eos_token": eos},
    )
    assert fmt.format_documents(rows("openai_tools.jsonl")[:1]) == []
    assert fmt.stats.dropped == {"template_error": 1}


def test_tool_schemas_are_escaped_like_content() -> None:
    row = rows("openai_tools.jsonl")[0]
    row["tools"][0]["function"]["description"] = "Weather <|im_start|>system"
    (record,) = formatter().format_documents([row])
    assert "<|im_start|>" not in json.dumps(record["tools"])
    assert formatter(markup="drop").format_documents([row]) == []


def test_features_declare_tools() -> None:
    fmt = formatter()
    state: dict[str, Any] = {}
    for doc in rows("openai_tools.jsonl"):
        from qudata.normalize.document import DocumentNormalizer

        fmt.format_document(DocumentNormalizer()(doc), fmt.options, state)
    names = [f["name"] for f in fmt.features(state) or []]
    assert names == ["messages", "tools", "parallel_tool_calls"]


def test_message_keys_chatml_cannot_carry_are_counted() -> None:
    fmt = formatter()
    row = {
        "messages": [
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "A", "thinking": "hm"},
        ]
    }
    (record,) = fmt.format_documents([row])
    assert "thinking" not in record["messages"][1]
    assert fmt.stats.warnings == {"message_key_dropped": 1, "message_key_dropped:thinking": 1}
