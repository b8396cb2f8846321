"""The record rules of each format, on records and on whole files of every codec."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from qudata.normalize.problems import PROBLEM_CODES, conversation_problems
from qudata.pack import ChatMLFormatter, JSONLFormatter, PlainTextFormatter
from qudata.pack.chatml_rules import validate_chatml
from qudata.pack.jsonl_rules import JSONLSchemaTracker, validate_jsonl
from qudata.pack.plain_rules import validate_plain_text
from qudata.quality.problems import HINTS, Problem
from qudata.quality.validate import validate_file

USER = {"role": "user", "content": "Hi"}
ASSISTANT = {"role": "assistant", "content": "Hello."}


def words(text: str) -> int:
    return len(text.split())


def write(path: Path, data: bytes) -> str:
    """Write ``data`` with the codec the file name asks for."""
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return str(path)


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def conv(*messages: Any, **extra: Any) -> bytes:
    return line({"messages": list(messages), **extra})


# (raw line, planted code); each line breaks exactly one rule
BROKEN_CHATML: list[tuple[bytes, str]] = [
    (line([1, 2]), "not_an_object"),
    (line({"metadata": {}}), "missing_messages"),
    (line({"messages": {"role": "user"}}), "messages_not_list"),
    (line({"messages": []}), "empty_conversation"),
    (conv("hi", ASSISTANT), "message_not_object"),
    (conv({"content": "x"}, ASSISTANT), "missing_role"),
    (conv({"role": "user"}, ASSISTANT), "missing_content"),
    (conv({**USER, "extra": 1}, ASSISTANT), "unknown_key"),
    (conv({"role": "robot", "content": "x"}, ASSISTANT), "unknown_role"),
    (conv({"role": "user", "content": 5}, ASSISTANT), "content_not_string"),
    (conv({"role": "user", "content": None}, ASSISTANT), "content_not_string"),
    (conv(USER, {**ASSISTANT, "weight": 2}), "bad_weight"),
    (conv({**USER, "weight": 1}, ASSISTANT), "bad_weight"),
    (conv({**USER, "name": 3}, ASSISTANT), "bad_name"),
    (conv({**USER, "tool_calls": []}, ASSISTANT), "bad_tool_calls"),
    (conv(USER, {**ASSISTANT, "tool_call_id": "c1"}), "bad_tool_call_id"),
    (conv({**USER, "reasoning_content": "why"}, ASSISTANT), "bad_reasoning"),
    (conv(USER), "no_assistant_message"),
    (conv({"role": "human", "content": "ShareGPT's role"}, ASSISTANT), "unknown_role"),
    (conv({"role": "user", "content": " "}, ASSISTANT), "empty_content"),
    (conv(USER, ASSISTANT, {"role": "system", "content": "x"}), "system_not_first"),
    (conv(USER, ASSISTANT, ASSISTANT), "broken_alternation"),
    (conv(USER, ASSISTANT, metadata=[1]), "metadata_not_object"),
    (conv(USER, ASSISTANT, tools=[{"name": "f"}]), "bad_tools"),
    (conv(USER, ASSISTANT, USER), "ends_on_user"),
    (
        b'{"messages": [{"role": "user", "content": "a\\ud800b"}, '
        b'{"role": "assistant", "content": "ok"}]}\n',
        "lone_surrogate",
    ),
    (
        b'{"messages": [{"role": "user", "content": "x"}, '
        b'{"role": "assistant", "content": "ok"}], "metadata": {"score": NaN}}\n',
        "non_finite_number",
    ),
    (conv(USER, {"role": "assistant", "content": "word " * 20}), "too_many_tokens"),
    (b'{"messages": [\n', "invalid_json"),
    (b'{"messages": "\xff"}\n', "invalid_utf8"),
    (b"\n", "blank_line"),
]

PREFERENCE = {
    "prompt": [USER],
    "chosen": [ASSISTANT],
    "rejected": [{"role": "assistant", "content": "no"}],
}
BROKEN_PREFERENCE: list[tuple[dict[str, object], str]] = [
    ({"prompt": [USER], "chosen": [ASSISTANT]}, "missing_preference_field"),
    ({**PREFERENCE, "prompt": [USER, ASSISTANT]}, "prompt_not_user_last"),
    ({**PREFERENCE, "rejected": [USER]}, "answer_not_assistant"),
]


def test_preference_rules() -> None:
    from qudata.pack.preference import validate_preference

    assert validate_preference(PREFERENCE) == []
    assert (
        validate_preference(
            {**PREFERENCE, "tools": [{"type": "function", "function": {"name": "f"}}]}
        )
        == []
    )
    for record, code in BROKEN_PREFERENCE:
        assert [p.code for p in validate_preference(record)] == [code], record
    assert [p.code for p in validate_preference([])] == ["not_an_object"]


GOOD_CHATML = [
    conv(USER, ASSISTANT),
    conv(
        {"role": "system", "content": "Be brief."},
        USER,
        {**ASSISTANT, "weight": 0},
        USER,
        {**ASSISTANT, "weight": 1},
        metadata={"source": "a.pdf", "score": 0.5},
    ),
    conv(
        USER,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ASSISTANT,
    ),
    conv(
        USER,
        {"role": "assistant", "tool_calls": [{"id": "c1"}]},
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ASSISTANT,
    ),
    conv({**USER, "name": "bob"}, ASSISTANT),
]


def found(result: Any) -> list[tuple[int | None, str]]:
    return [(p.line, p.code) for p in result.problems]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_every_planted_chatml_problem_is_found_on_its_line(tmp_path: Path, suffix: str) -> None:
    data = b"".join(raw for raw, _ in BROKEN_CHATML) + b"".join(GOOD_CHATML)
    path = write(tmp_path / f"broken{suffix}", data)
    result = validate_file(path, "chatml", max_tokens=10, count_tokens=words)
    assert found(result) == [(n, code) for n, (_, code) in enumerate(BROKEN_CHATML, 1)]
    assert not result.ok
    assert result.records == len(BROKEN_CHATML) + len(GOOD_CHATML) - 1  # the blank line
    assert result.by_code()["content_not_string"] == 2
    assert list(result.by_code()) == sorted(result.by_code())
    assert all(p.hint == HINTS[p.code] for p in result.problems)


def test_every_code_is_planted_somewhere() -> None:
    # line_too_long is planted in tests/hostile/test_line_limits.py
    # chat_markup is planted in tests/hostile/test_small_attacks.py
    chatml = {code for _, code in BROKEN_CHATML} | {"unreadable", "line_too_long", "chat_markup"}
    jsonl = {"missing_key", "key_missing_on_earlier_rows", "type_changed"}
    preference = {code for _, code in BROKEN_PREFERENCE}
    from tests.pack.test_kto import BROKEN_KTO

    kto = {code for _, code in BROKEN_KTO}
    plain = {c for c in HINTS if c not in chatml | jsonl | preference | kto}
    assert plain == {
        "bad_block_header",
        "wrong_document_number",
        "bad_header_line",
        "header_out_of_order",
        "missing_blank_line",
        "missing_final_newline",
        "extra_final_newline",
        "unescaped_line",
    }


def test_every_conversation_drop_code_of_pack_is_a_validate_code() -> None:
    """pack drops conversations by ``conversation_problems``; validate reports the same
    codes for the same conversations, so the two rule sets cannot drift apart."""
    planted = {
        "empty_conversation": [],
        "unknown_role": [{"role": "gpt", "content": "x"}, ASSISTANT],
        "empty_content": [{"role": "user", "content": ""}, ASSISTANT],
        "system_not_first": [USER, ASSISTANT, {"role": "system", "content": "x"}],
        "broken_alternation": [USER, {"role": "tool", "content": "x"}, ASSISTANT],
        "no_assistant_message": [USER],
        "ends_on_user": [USER, ASSISTANT, USER],
    }
    assert set(planted) == set(PROBLEM_CODES)
    for code in PROBLEM_CODES:
        assert code in HINTS, code
        assert code in conversation_problems(planted[code]), code
        assert code in {p.code for p in validate_chatml({"messages": planted[code]})}, code


ROLES = st.sampled_from(["system", "user", "assistant", "tool", "human", "gpt"])
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": ROLES, "content": st.sampled_from(["x", "", " ", None])},
        optional={"tool_calls": st.just([{"id": "c"}]), "tool_call_id": st.just("c")},
    ),
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(messages=MESSAGES)
def test_what_pack_drops_validate_reports(messages: list[dict[str, Any]]) -> None:
    dropped = conversation_problems(messages)
    reported = {p.code for p in validate_chatml({"messages": messages})}
    assert bool(dropped) <= bool(reported)
    # a code is only left out where a message check already reported the same fault
    said = {"missing_content", "content_not_string", "unknown_role", "missing_role"}
    assert set(dropped) <= reported or reported & said


@pytest.mark.parametrize("name", ["items.json", "items.jsonl", "items.json.gz"])
def test_json_array_files_are_read_as_arrays_whatever_their_name(tmp_path: Path, name: str) -> None:
    records = [{"messages": [USER, ASSISTANT]}, {"messages": [USER]}, [1]]
    path = write(tmp_path / name, json.dumps(records, indent=2).encode())
    result = validate_file(path, "chatml")
    assert found(result) == [(2, "no_assistant_message"), (3, "not_an_object")]
    assert result.records == 3


def test_jsonl_named_json_is_read_as_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "lines.json", conv(USER, ASSISTANT) + conv(USER) + b"[1]\n")
    result = validate_file(path, "chatml")
    assert found(result) == [(2, "no_assistant_message"), (3, "not_an_object")]


def test_chatml_paths_and_messages() -> None:
    record = {"messages": [USER, {"role": 7, "content": "x"}, {**ASSISTANT, "weight": True}]}
    problems = validate_chatml(record)
    assert [(p.code, p.path) for p in problems] == [
        ("unknown_role", "messages[1].role"),
        ("bad_weight", "messages[2].weight"),
    ]
    assert problems[0].message == "unknown role number"
    assert problems[0].line is None
    assert validate_chatml("x")[0].path == "$"
    nested = {"messages": [USER, ASSISTANT], "metadata": {"a": [{"b": float("inf")}]}}
    assert [(p.code, p.path) for p in validate_chatml(nested)] == [
        ("non_finite_number", "metadata.a[0].b")
    ]
    key = {"messages": [USER, ASSISTANT], "metadata": {"\udc80": 1}}
    assert [p.code for p in validate_chatml(key)] == ["lone_surrogate"]


def test_chatml_tokens_need_both_arguments() -> None:
    record = {"messages": [USER, {"role": "assistant", "content": "a b c"}]}
    assert validate_chatml(record, max_tokens=2) == []
    assert validate_chatml(record, count_tokens=words) == []
    (problem,) = validate_chatml(record, max_tokens=2, count_tokens=words)
    assert problem == Problem(
        "too_many_tokens", "messages[1].content", "3 tokens > 2", HINTS["too_many_tokens"]
    )


NO_TOKENIZER = {"quality": {"tokenizer": "none"}}  # the formatters count no tokens here


def documents() -> list[dict[str, Any]]:
    return [
        {
            "id": "a",
            "text": "First document.",
            "source": "a.pdf",
            "quality_score": 0.85,
            "topics": ["technology", "AI"],
            "title": "First",
            "pages": 3,
        },
        {
            "id": "b",
            "text": "Second one,\n\n---\n\nwith a rule.",
            "source": "b.md",
            "labels": ["x"],
            "pages": 4,
        },
        {"id": "c", "text": "Third.", "quality_score": 0.5},
        {"id": "d", "messages": [USER, ASSISTANT]},
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_chatml_formatter_output_passes(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    ChatMLFormatter(NO_TOKENIZER).export_to_file(
        documents(), out, include_metadata=True, system_message="You are helpful."
    )
    if suffix != ".jsonl":  # the formatter writes plain bytes; compress them here
        write(out, out.read_bytes())
    result = validate_file(str(out), "chatml", max_tokens=100, count_tokens=words)
    assert found(result) == []
    assert result.ok
    assert result.records == 4
    assert result.tokens_total is not None and result.tokens_total > 0
    assert result.max_message_tokens == max(
        words(m["content"])
        for r in ChatMLFormatter(NO_TOKENIZER).format_documents(
            documents(), system_message="You are helpful."
        )
        for m in r["messages"]
    )


def test_token_stats_only_when_counting(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", conv(USER, ASSISTANT))
    assert validate_file(path, "chatml").tokens_total is None
    result = validate_file(path, "chatml", count_tokens=words)
    assert (result.tokens_total, result.max_message_tokens) == (2, 1)


BROKEN_JSONL = [
    {"text": "a", "n": 1, "metadata": {"k": "x"}},
    {"text": "b", "n": "two", "metadata": {"k": 1}},
    {"text": "c", "metadata": {"k": None}},
    {"text": "d", "n": 2.5, "late": True, "metadata": {"k": "y"}},
    {"text": None, "n": None, "late": False, "metadata": {}},
]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_jsonl_schema_problems(tmp_path: Path, suffix: str) -> None:
    data = b"".join(line(r) for r in BROKEN_JSONL) + b'"just a string"\n'
    result = validate_file(write(tmp_path / f"rows{suffix}", data), "jsonl")
    assert [(p.line, p.code, p.path) for p in result.problems] == [
        (2, "type_changed", "n"),
        (2, "type_changed", "metadata.k"),
        (3, "missing_key", "n"),
        (4, "key_missing_on_earlier_rows", "late"),
        (6, "not_an_object", "$"),
    ]
    assert result.problems[0].message == "was number, now string"
    assert "the 3 rows before lack it" in result.problems[3].message
    assert result.records == 6


def test_jsonl_tracker_and_record_rules() -> None:
    tracker = JSONLSchemaTracker()
    assert tracker.check({"a": 1, "b": [1]}) == []
    assert tracker.check({"a": 2.5, "b": None}) == []  # int and float, null: compatible
    (changed,) = tracker.check({"a": True, "b": []}, line=9)
    assert (changed.code, changed.path, changed.line) == ("type_changed", "a", 9)
    assert changed.message == "was number, now boolean"
    assert tracker.finish() == []
    assert [p.code for p in validate_jsonl([])] == ["not_an_object"]
    assert [p.path for p in validate_jsonl({"x": {"y": float("nan")}})] == ["x.y"]


def test_jsonl_formatter_output_passes(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl.gz"
    JSONLFormatter(NO_TOKENIZER).export_to_file(
        documents(),
        tmp_path / "plain.jsonl",
        fields=["id", "text", "labels", "metadata", "quality_score"],
    )
    write(out, (tmp_path / "plain.jsonl").read_bytes())
    for path in (tmp_path / "plain.jsonl", out):
        result = validate_file(str(path), "jsonl")
        assert found(result) == [] and result.records == 4


def test_jsonl_formatter_metadata_keeps_one_type(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    docs = [{"text": "a", "pages": 3}, {"text": "b", "pages": "many"}]
    JSONLFormatter(NO_TOKENIZER).export_to_file(docs, out)
    assert found(validate_file(str(out), "jsonl")) == []


def test_parquet_rows_are_records(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [
        {"messages": [USER, {**ASSISTANT, "weight": 1}], "metadata": {"score": 0.5}},
        {"messages": [{"role": "robot", "content": "x"}, ASSISTANT], "metadata": {"score": None}},
        {"messages": [USER, ASSISTANT], "metadata": {"score": float("nan")}},
    ]
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    result = validate_file(str(path), "chatml")
    assert found(result) == [(2, "unknown_role"), (3, "non_finite_number")]
    assert result.records == 3


PLAIN_DOCS = [
    {
        "text": "Content goes here...",
        "source": "document.pdf",
        "quality_score": 0.85,
        "topics": ["technology", "AI"],
    },
    {"text": "Only text,\n\n---\n\nwith a Markdown rule inside."},
    {"text": "Third", "quality_score": 0.5},
]


@pytest.mark.parametrize("headers", [True, False])
@pytest.mark.parametrize("separator", ["\n---\n", "#####"])
@pytest.mark.parametrize("suffix", [".txt", ".txt.gz", ".txt.zst"])
def test_plain_formatter_output_passes(
    tmp_path: Path, headers: bool, separator: str, suffix: str
) -> None:
    text = PlainTextFormatter(NO_TOKENIZER).format_documents(
        PLAIN_DOCS, separator=separator, include_headers=headers
    )
    assert validate_plain_text(text, separator=separator, headers=headers) == []
    path = write(tmp_path / f"out{suffix}", text.encode())
    result = validate_file(path, "plain", separator=separator, headers=headers)
    assert found(result) == []
    assert result.records == 3  # the Markdown rule inside a text is escaped: no new block


def test_plain_formatter_file_passes(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    PlainTextFormatter(NO_TOKENIZER).export_to_file(PLAIN_DOCS, out)
    result = validate_file(str(out), "plain")
    assert result.ok and result.records == 3


GOOD_PLAIN = (
    "=== Document 1 ===\n"  # 1
    "Source: a.pdf\n"  # 2
    "Quality: 0.85\n"  # 3
    "\n"  # 4
    "Hello\n"  # 5
    "\n"  # 6
    "---\n"  # 7
    "\n"  # 8
    "=== Document 2 ===\n"  # 9
    "\n"  # 10
    "World\n"  # 11
)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("Document 2", "Document 3", [(9, "wrong_document_number")]),
        ("=== Document 2", "== Document 2", [(9, "bad_block_header")]),
        ("0.85\n\nHello", "0.85\nHello", [(4, "missing_blank_line")]),
        ("Quality: 0.85", "Quality: 0.9", [(3, "bad_header_line")]),
        (
            "Source: a.pdf\nQuality: 0.85",
            "Quality: 0.85\nSource: a.pdf",
            [(3, "header_out_of_order")],
        ),
        ("World\n", "World", [(11, "missing_final_newline")]),
        ("World\n", "World\n\n\n", [(12, "extra_final_newline")]),
        ("\nWorld", "\n  ", [(11, "empty_content")]),
        ("Hello\n", "Hello\n---\n", [(6, "unescaped_line")]),
        ("Hello\n", "Source: x\n", [(5, "unescaped_line")]),
    ],
)
@pytest.mark.parametrize("suffix", [".txt", ".txt.gz", ".txt.zst"])
def test_broken_plain_text_is_reported_on_its_line(
    tmp_path: Path, old: str, new: str, expected: list[tuple[int, str]], suffix: str
) -> None:
    assert validate_plain_text(GOOD_PLAIN) == []
    text = GOOD_PLAIN.replace(old, new, 1)
    assert [(p.line, p.code) for p in validate_plain_text(text)] == expected
    result = validate_file(write(tmp_path / f"bad{suffix}", text.encode()), "plain")
    assert found(result) == expected


def test_plain_numbering_resyncs_after_a_gap() -> None:
    blocks = [f"=== Document {n} ===\n\nText {n}" for n in (1, 2, 4, 5)]
    problems = validate_plain_text("\n\n---\n\n".join(blocks) + "\n")
    assert [(p.line, p.code) for p in problems] == [(13, "wrong_document_number")]
    assert problems[0].message == "document 4, expected 3"


def test_plain_invalid_utf8_has_its_line(tmp_path: Path) -> None:
    data = GOOD_PLAIN.encode().replace(b"World", b"W\xffrld")
    result = validate_file(write(tmp_path / "bad.txt", data), "plain")
    assert found(result) == [(11, "invalid_utf8")]


def test_truncated_gzip_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(GOOD_CHATML) * 50)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    result = validate_file(str(path), "chatml")
    assert [p.code for p in result.problems] == ["unreadable"]
    assert result.problems[0].line == result.records + 1


TEXT = st.text(st.characters(codec="utf-8"), min_size=1).filter(
    lambda t: bool(t.strip()) and not t.endswith("\n")
)
DOCS = st.lists(
    st.fixed_dictionaries(
        {"text": TEXT},
        optional={
            "source": TEXT,
            "title": TEXT,
            "quality_score": st.floats(0, 1),
            "topics": st.lists(TEXT, max_size=3),
        },
    ),
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(docs=DOCS, headers=st.booleans())
def test_any_formatter_output_passes(docs: list[dict[str, Any]], headers: bool) -> None:
    text = PlainTextFormatter(NO_TOKENIZER).format_documents(docs, include_headers=headers)
    assert validate_plain_text(text, headers=headers) == []
    for record in ChatMLFormatter(NO_TOKENIZER).format_documents(docs, include_metadata=True):
        assert validate_chatml(record) == []
    tracker = JSONLSchemaTracker()
    for record in JSONLFormatter(NO_TOKENIZER).format_documents(docs):
        assert validate_jsonl(record) + tracker.check(record) == []
    assert tracker.finish() == []


def test_a_format_with_rules_is_validated_with_no_other_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``qudata validate`` has no list of formats: a registered format with rules is one."""
    from typing import ClassVar

    from qudata.pack.registry import FORMATTERS
    from qudata.quality.problems import FileRules, FileValidation, make_problem
    from qudata.quality.validate import validated_formats

    class ShoutRules(FileRules):
        def check(self, record: Any, line: int, result: FileValidation) -> list[Problem]:
            if str(record.get("text", "")).isupper():
                return []
            return [make_problem("empty_content", "text", "not shouted")]

    class ShoutFormatter(JSONLFormatter):
        name: ClassVar[str] = "shout"
        file_rules: ClassVar[type[FileRules] | None] = ShoutRules

    monkeypatch.setitem(FORMATTERS, "shout", ShoutFormatter)
    assert validated_formats() == ["chatml", "jsonl", "plain", "preference", "kto", "shout"]
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "HI"}\n{"text": "hi"}\n', encoding="utf-8")
    result = validate_file(str(path), "shout")
    assert result.records == 2
    assert [(p.code, p.line) for p in result.problems] == [("empty_content", 2)]
