"""Tool schemas and tool calls in OpenAI form, from any source shape."""

from __future__ import annotations

import json

import pytest

from qudata.normalize.tools import (
    ToolError,
    attach_tool_results,
    normalize_tool_call,
    normalize_tools,
    render_call,
    tools_prompt,
    undeclared_calls,
)

ADD = {"name": "add", "description": "Add.", "parameters": {"type": "object"}}


def test_tools_in_every_source_shape() -> None:
    openai = [{"type": "function", "function": ADD}]
    assert normalize_tools(openai) == openai
    assert normalize_tools([ADD]) == openai  # a bare function
    assert normalize_tools(json.dumps([ADD])) == openai  # glaive / LLaMA-Factory string
    assert normalize_tools(ADD) == openai  # one schema alone
    assert normalize_tools(None) is None
    assert normalize_tools("") is None
    assert normalize_tools([]) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('[{"name": "add",', "not valid JSON"),
        (42, "must be a list"),
        ([{"description": "no name"}], "no function name"),
        ([{"type": "retrieval"}], '"type": "function"'),
        ([{"name": "f", "parameters": "x"}], "parameters must be a JSON schema object"),
        ([{"name": "f", "description": 3}], "description must be a string"),
        (["add"], "must be an object"),
    ],
)
def test_malformed_tools_are_refused_with_a_reason(value: object, message: str) -> None:
    with pytest.raises(ToolError, match=message) as info:
        normalize_tools(value)
    assert info.value.reason == "bad_tools"


def test_tool_calls_in_openai_form() -> None:
    flat = normalize_tool_call({"name": "add", "arguments": {"a": 1}}, "call_0")
    assert flat == {
        "id": "call_0",
        "type": "function",
        "function": {"name": "add", "arguments": '{"a": 1}'},
    }
    given = {"id": "c9", "type": "function", "function": {"name": "add", "arguments": "{}"}}
    assert normalize_tool_call(given, "call_0") == given
    with pytest.raises(ToolError, match="not valid JSON") as info:
        normalize_tool_call({"function": {"name": "add", "arguments": "{a"}}, "call_0")
    assert info.value.reason == "bad_tool_call"
    with pytest.raises(ToolError, match="no function name"):
        normalize_tool_call({"function": {}}, "call_0")


def test_results_answer_the_open_calls_in_order() -> None:
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "a"}, {"id": "b"}]},
        {"role": "tool", "content": "1"},
        {"role": "tool", "content": "2"},
        {"role": "assistant", "tool_calls": [{"id": "c"}]},
        {"role": "tool", "content": "3", "tool_call_id": "given"},
    ]
    attach_tool_results(messages)
    assert [m.get("tool_call_id") for m in messages if m["role"] == "tool"] == ["a", "b", "given"]


def test_undeclared_calls_are_counted_only_against_declared_tools() -> None:
    tools = normalize_tools([ADD])
    messages = [
        {"role": "assistant", "tool_calls": [normalize_tool_call({"name": n}, "c") for n in "xy"]},
        {"role": "assistant", "tool_calls": [normalize_tool_call({"name": "add"}, "c")]},
    ]
    assert undeclared_calls(messages, tools) == 2
    assert undeclared_calls(messages, None) == 0


def test_hermes_text() -> None:
    call = normalize_tool_call({"name": "add", "arguments": {"a": 1}}, "c")
    assert render_call(call) == '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>'
    broken = {"function": {"name": "f", "arguments": "not json"}}
    assert '"arguments": "not json"' in render_call(broken)
    prompt = tools_prompt(normalize_tools([ADD]) or [])
    assert prompt.startswith("# Tools\n")
    assert '\n{"type": "function", "function": {"name": "add", ' in prompt
    assert prompt.endswith("</tool_call>")
