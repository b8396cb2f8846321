"""ChatML depth (issue 4), part 1: conversation sources against golden files, the drop
codes of broken conversations, and ``system_policy``.

Golden files live in ``tests/data/chatml/``: ``<input>.input.jsonl`` is read row by row
and ``<case>.expected.jsonl`` is what ``ChatMLFormatter(...).export_to_file`` must write,
byte for byte. After an intended change, rewrite them with
``QUDATA_REGEN_GOLDEN=1 pytest tests/pack/test_chatml_sources.py`` and read the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from qudata.pack import ChatMLFormatter
from qudata.pack.chatml_rules import validate_chatml

GOLDEN = Path(__file__).parent.parent / "data" / "chatml"
NO_TOKENS = {"tokenizer": "none"}
CUSTOM_USER = (
    'Write part {{ part }} of {{ parts }} of "{{ title }}" '
    "({{ topics | join(', ') }}), from {{ source }}."
)

#: case -> (input file stem, quality section, pack.chatml options, expected sources)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], dict[str, int]]] = {
    "messages": ("messages", NO_TOKENS, {"include_metadata": True}, {"messages": 3}),
    "sharegpt": ("sharegpt", NO_TOKENS, {}, {"sharegpt": 2}),
    "sharegpt_tools": ("sharegpt_tools", NO_TOKENS, {}, {"sharegpt": 2}),
    "alpaca": (
        "alpaca",
        NO_TOKENS,
        {"system_message": "You are a helpful assistant."},
        {"alpaca": 4},
    ),
    "prompt_completion": ("prompt_completion", NO_TOKENS, {}, {"prompt_completion": 2}),
    "question_answer": (
        "question_answer",
        NO_TOKENS,
        {"include_metadata": True},
        {"question_answer": 2},
    ),
    "documents": (
        "documents",
        NO_TOKENS,
        {"system_message": "You are a helpful assistant.", "include_metadata": True},
        {"document": 3},
    ),
    # the exact default counter: 25 tokens cut the first document into parts
    "documents_split": ("documents_long", {}, {"max_tokens_per_message": 25}, {"document": 2}),
    "documents_custom": (
        "documents_long",
        {},
        {"max_tokens_per_message": 25, "user_template": CUSTOM_USER},
        {"document": 2},
    ),
}


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def formatter(quality: dict[str, Any] | None = None, **options: Any) -> ChatMLFormatter:
    return ChatMLFormatter({"quality": dict(NO_TOKENS if quality is None else quality)}, **options)


def roles(record: dict[str, Any]) -> list[str]:
    return [m["role"] for m in record["messages"]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, tmp_path: Path) -> None:
    stem, quality, options, sources = CASES[case]
    rows = read_rows(GOLDEN / f"{stem}.input.jsonl")
    fmt = ChatMLFormatter({"quality": quality, "pack": {"chatml": options}})
    out = tmp_path / "out.jsonl"
    stats = fmt.export_to_file(rows, out)
    expected = GOLDEN / f"{case}.expected.jsonl"
    if os.environ.get("QUDATA_REGEN_GOLDEN") == "1":
        expected.write_bytes(out.read_bytes())
    assert out.read_bytes() == expected.read_bytes()
    assert dict(stats.sources) == sources
    assert dict(stats.dropped) == {}
    assert stats.documents == len(rows)
    limit = options.get("max_tokens_per_message")
    for record in read_rows(out):
        assert validate_chatml(record) == [], record
        if limit is not None:  # every message within the budget, prompts too
            assert all(fmt.counter.count(m["content"]) <= limit for m in record["messages"])


def test_golden_split_numbers_the_parts() -> None:
    """The split goldens really are split: part k of n in every prompt of the long one."""
    split = read_rows(GOLDEN / "documents_split.expected.jsonl")
    custom = read_rows(GOLDEN / "documents_custom.expected.jsonl")
    parts = len(split) - 1  # the second document fits in one part
    assert parts >= 3
    for k, record in enumerate(split[:parts], 1):
        assert record["messages"][0]["content"] == (
            f'Write a document titled "Rivers" (part {k} of {parts}).'
        )
    assert split[-1]["messages"][0]["content"] == 'Write a document titled "Short".'
    for k, record in enumerate(custom[:parts], 1):
        assert record["messages"][0]["content"] == (
            f'Write part {k} of {parts} of "Rivers" (geography, water), from geo/rivers.md.'
        )
    assert [r["messages"][1] for r in split] == [r["messages"][1] for r in custom]
    text = read_rows(GOLDEN / "documents_long.input.jsonl")[0]["text"]
    assert "\n\n".join(r["messages"][1]["content"] for r in split[:parts]) == text


def test_sharegpt_function_call_and_observation_are_kept() -> None:
    """README: ``function_call`` -> assistant, ``observation`` -> tool; such a conversation
    must be written (today it is dropped as ``broken_alternation``, because a tool turn
    must follow an assistant turn with ``tool_calls`` and ``function_call`` makes none)."""
    call = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    row = {
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": call},
            {"from": "observation", "value": '{"temp_c": 21}'},
            {"from": "gpt", "value": "It is 21 °C."},
        ]
    }
    fmt = formatter()
    records = fmt.format_documents([row])
    assert dict(fmt.stats.dropped) == {}
    (record,) = records
    assert roles(record) == ["user", "assistant", "tool", "assistant"]
    call_turn = record["messages"][1]
    # either kept as content or turned into tool_calls: the call must not be lost
    assert "get_weather" in orjson.dumps(call_turn).decode()
    assert record["messages"][2]["content"] == '{"temp_c": 21}'
    assert validate_chatml(record) == []
    assert dict(fmt.stats.sources) == {"sharegpt": 1}


# ---------------------------------------------------------------- drops, with codes

U = {"role": "user", "content": "Question?"}
A = {"role": "assistant", "content": "Answer."}
S = {"role": "system", "content": "Be brief."}
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
}
TOOL = {"role": "tool", "tool_call_id": "c1", "content": "42"}

BROKEN: list[tuple[str, dict[str, Any]]] = [
    ("no_assistant_message", {"messages": [U]}),
    ("no_assistant_message", {"messages": [S, U]}),
    ("no_assistant_message", {"conversations": [{"from": "human", "value": "Hi"}]}),
    ("unknown_role", {"messages": [U, {"role": "narrator", "content": "Meanwhile."}, A]}),
    ("unknown_role", {"messages": [{"content": "no role"}, A]}),
    (
        "unknown_role",
        {"conversations": [{"from": "human", "value": "a"}, {"from": "x", "value": "b"}]},
    ),
    ("empty_content", {"messages": [U, {"role": "assistant", "content": ""}]}),
    ("empty_content", {"messages": [{"role": "user", "content": " \n\t"}, A]}),
    ("empty_content", {"messages": [U, {"role": "assistant", "content": None}]}),
    ("empty_content", {"messages": [U, {"role": "assistant", "content": 7}]}),
    ("empty_content", {"instruction": "Do it.", "output": ""}),
    ("empty_content", {"prompt": "p", "completion": None}),
    ("empty_content", {"question": "", "answer": "a"}),
    ("broken_alternation", {"messages": [U, U, A]}),
    ("broken_alternation", {"messages": [U, A, A]}),
    ("broken_alternation", {"messages": [A, U, A]}),
    ("broken_alternation", {"messages": [U, A, TOOL, A]}),  # tool without tool_calls
    ("broken_alternation", {"messages": [U, TOOL, A]}),
    ("system_not_first", {"messages": [U, S, A]}),
    ("system_not_first", {"messages": [S, U, A, S, U, A]}),
]


@pytest.mark.parametrize(
    ("code", "row"), BROKEN, ids=[f"{c}-{i}" for i, (c, _) in enumerate(BROKEN)]
)
def test_broken_conversation_is_dropped_with_its_code(code: str, row: dict[str, Any]) -> None:
    fmt = formatter()
    good = {"messages": [U, A]}
    records = fmt.format_documents([good, row, good])
    assert len(records) == 2  # never silent: the drop is counted, the rest is written
    assert dict(fmt.stats.dropped) == {code: 1}
    assert fmt.stats.documents == 2


def test_tool_call_round_trip_is_not_broken() -> None:
    fmt = formatter()
    (record,) = fmt.format_documents([{"messages": [S, U, CALL, TOOL, A, U, A]}])
    assert roles(record) == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
    ]
    # every message has the output's keys: null where a message has none
    (call,) = CALL["tool_calls"]
    arguments = json.loads(call["function"]["arguments"])  # written as the JSON value
    expected = [{**call, "function": {**call["function"], "arguments": arguments}}]
    assert record["messages"][2] == {**CALL, "tool_calls": expected, "tool_call_id": None}
    (string,) = formatter(tool_arguments="string").format_documents(
        [{"messages": [S, U, CALL, TOOL, A, U, A]}]
    )
    assert string["messages"][2] == {**CALL, "tool_call_id": None}  # OpenAI's form
    assert dict(fmt.stats.dropped) == {}


def test_drops_reach_the_manifest_and_rejects(tmp_path: Path) -> None:
    import qudata

    rows = [{"id": f"r{i}", **row} for i, (_, row) in enumerate(BROKEN)]
    rows.append({"id": "ok", "messages": [U, A]})
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = tmp_path / "out"
    report = qudata.pack_dataset(
        [src],
        out,
        config={
            "quality": NO_TOKENS,
            "dedup": {"method": "none"},
            "pack": {"chatml": {"max_tokens_per_message": None}},
        },
        formats=["chatml"],
    )
    assert report.balanced()
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    expected: dict[str, int] = {}
    for code, _ in BROKEN:
        expected[code] = expected.get(code, 0) + 1
    assert manifest["formats"]["chatml"]["dropped"] == dict(sorted(expected.items()))
    assert manifest["formats"]["chatml"]["documents"] == 1
    rejects = read_rows(out / "rejects.jsonl")
    assert sorted((r["id"], r["reason"]) for r in rejects) == sorted(
        (f"r{i}", code) for i, (code, _) in enumerate(BROKEN)
    )
    assert all(r["format"] == "chatml" and r["detail"] for r in rejects)


# ---------------------------------------------------------------- system_policy

OWN = {"messages": [{"role": "system", "content": "Own."}, U, A]}
NONE = {"messages": [U, A]}
ALPACA_OWN = {"instruction": "Q", "output": "A", "system": "Own."}
SHAREGPT_OWN = {
    "conversations": [
        {"from": "system", "value": "Own."},
        {"from": "human", "value": "Q"},
        {"from": "gpt", "value": "A"},
    ]
}
DOCUMENT = {"text": "Body.", "title": "T"}

# (policy, system_message) -> system turns of (a record with its own, one without)
POLICY: list[tuple[str, str | None, list[str], list[str]]] = [
    ("keep", None, ["Own."], []),
    ("keep", "Configured.", ["Own."], ["Configured."]),
    ("replace", "Configured.", ["Configured."], ["Configured."]),
    # replace with nothing configured: the own turn is removed (current behaviour)
    ("replace", None, [], []),
    ("drop", "Configured.", [], ["Configured."]),
    ("drop", None, [], []),
]


@pytest.mark.parametrize(("policy", "message", "own", "none"), POLICY)
def test_system_policy(policy: str, message: str | None, own: list[str], none: list[str]) -> None:
    fmt = formatter(system_policy=policy, system_message=message)
    records = fmt.format_documents([OWN, ALPACA_OWN, SHAREGPT_OWN, NONE, DOCUMENT])
    assert len(records) == 5
    for record in records:
        system = [m["content"] for m in record["messages"] if m["role"] == "system"]
        assert roles(record)[len(system) :] == ["user", "assistant"]
        assert all(m["role"] == "system" for m in record["messages"][: len(system)])
    with_own, without = records[:3], records[3:]
    for record in with_own:
        assert [m["content"] for m in record["messages"] if m["role"] == "system"] == own
    for record in without:
        assert [m["content"] for m in record["messages"] if m["role"] == "system"] == none
