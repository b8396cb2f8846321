"""Conversation sources: roles, content parts, top-level system, history, tags."""

from __future__ import annotations

from typing import Any

import pytest

from qudata.errors import InputError
from qudata.normalize.columns import Shape
from qudata.normalize.document import DocumentNormalizer
from qudata.normalize.problems import conversation_problems, ends_on_user
from qudata.normalize.shapes import KINDS, read_conversation
from qudata.normalize.turns import ConversationError, message_text

HI = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def read(row: dict[str, Any], shape: Shape | None = None) -> Any:
    conversation = read_conversation((shape or Shape()).apply(row), shape)
    assert conversation is not None
    return conversation


def test_developer_is_system() -> None:
    conversation = read({"messages": [{"role": "developer", "content": "Be brief."}, *HI]})
    assert conversation.messages[0] == {"role": "system", "content": "Be brief."}


def test_text_parts_are_joined_other_parts_refused() -> None:
    parts = [{"type": "text", "text": "a "}, {"type": "text", "text": "b"}]
    conversation = read({"messages": [{"role": "user", "content": parts}, HI[1]]})
    assert conversation.messages[0]["content"] == "a b"
    for part, name in (({"type": "input_audio"}, "'input_audio'"), ("raw", "'str'")):
        with pytest.raises(ConversationError, match=name) as info:
            read({"messages": [{"role": "user", "content": [part]}, HI[1]]})
        assert info.value.reason == "unsupported_content"


def test_top_level_system_becomes_the_system_turn_of_every_shape() -> None:
    rows = [
        {"messages": HI},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
        {"instruction": "Hi", "output": "Hello"},
    ]
    for row in rows:
        conversation = read({**row, "system": "Sys."})
        assert conversation.messages[0] == {"role": "system", "content": "Sys."}
        assert "system" in conversation.keys
    # a record with its own system turn keeps it; the top-level one is not consumed
    own = read({"messages": [{"role": "system", "content": "Own."}, *HI], "system": "Top."})
    assert own.messages[0]["content"] == "Own." and "system" not in own.keys
    doc = DocumentNormalizer()(
        {"messages": [{"role": "system", "content": "Own."}, *HI], "system": "Top."}
    )
    assert doc.metadata == {"system": "Top."}  # kept, not lost


def test_history_and_its_errors() -> None:
    conversation = read({"instruction": "Q2", "output": "A2", "history": [["Q1", "A1"]]})
    assert [m["content"] for m in conversation.messages] == ["Q1", "A1", "Q2", "A2"]
    with pytest.raises(ConversationError, match="history"):
        read({"instruction": "Q", "output": "A", "history": [["only one"]]})


def test_tags_read_other_turn_keys_and_role_values() -> None:
    shape = Shape(
        columns={"messages": "turns"},
        tags={
            "role_tag": "r",
            "content_tag": "c",
            "user_tag": "u",
            "assistant_tag": "a",
            "function_tag": "fn",
            "observation_tag": "obs",
        },
    )
    turns = [
        {"r": "u", "c": "Add 1 and 2"},
        {"r": "fn", "c": '{"name": "add", "arguments": {"a": 1, "b": 2}}'},
        {"r": "obs", "c": "3"},
        {"r": "a", "c": "3."},
    ]
    messages = read({"turns": turns}, shape).messages
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "add"
    assert messages[2]["tool_call_id"] == messages[1]["tool_calls"][0]["id"]


def test_a_parallel_function_call_turn() -> None:
    calls = '[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]'
    conversation = read(
        {
            "conversations": [
                {"from": "human", "value": "go"},
                {"from": "function_call", "value": calls},
                {"from": "observation", "value": "1"},
                {"from": "observation", "value": "2"},
                {"from": "gpt", "value": "done"},
            ]
        }
    )
    call = conversation.messages[1]
    assert [c["id"] for c in call["tool_calls"]] == ["call_1", "call_1_1"]
    assert [m.get("tool_call_id") for m in conversation.messages[2:4]] == ["call_1", "call_1_1"]
    assert conversation_problems(conversation.messages) == []


def test_ends_on_user_and_message_text() -> None:
    assert conversation_problems([*HI, {"role": "user", "content": "Bye"}]) == ["ends_on_user"]
    doc = DocumentNormalizer()({"messages": [*HI, {"role": "user", "content": "Bye"}]})
    assert ends_on_user(doc)
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
    }
    assert message_text(call) == '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'
    assert message_text({"role": "user", "content": "x"}) == "x"


def test_unknown_shape_names_the_keys() -> None:
    with pytest.raises(
        InputError, match=r"keys: answer_text, q; name them with input.columns"
    ) as info:
        DocumentNormalizer()({"q": "?", "answer_text": "!"})
    assert info.value.reason == "unknown_shape"


def test_text_column() -> None:
    doc = DocumentNormalizer(shape=Shape(columns={"text": "body"}))({"body": "Hello."})
    assert doc.text == "Hello."


def test_every_kind_is_listed_in_the_readme() -> None:
    """docs/formats.md's table of recognised input shapes is the detector's list of kinds."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "docs" / "formats.md").read_text(encoding="utf-8")
    section = readme.split("## Conversation sources", 1)[1].split("\n\n", 3)[2]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    kinds = [line.split("`")[1] for line in rows]
    assert kinds == [*KINDS, "document"]


def test_conversational_prompt_completion() -> None:
    conversation = read(
        {
            "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
            "completion": [{"role": "assistant", "content": "A"}],
        }
    )
    assert conversation.kind == "prompt_completion"
    assert [m["role"] for m in conversation.messages] == ["system", "user", "assistant"]
    assert read({"prompt": "Q", "completion": "A"}).messages == [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "A"},
    ]


def test_openai_legacy_functions_and_function_call() -> None:
    conversation = read(
        {
            "functions": [{"name": "add", "parameters": {"type": "object"}}],
            "messages": [
                {"role": "user", "content": "1+2"},
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                },
                {"role": "function", "name": "add", "content": "3"},
                {"role": "assistant", "content": "3"},
            ],
        }
    )
    assert conversation.tools == [
        {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    ]
    call = conversation.messages[1]["tool_calls"][0]
    assert call["function"]["name"] == "add" and call["id"] == "call_1"
    assert conversation.messages[2]["role"] == "tool"
    assert conversation.messages[2]["tool_call_id"] == "call_1"
    assert conversation_problems(conversation.messages) == []
