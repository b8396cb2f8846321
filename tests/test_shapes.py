"""Real datasets in every common shape, end to end (issue 12): fixtures in tests/data/shapes/,
packed with ``pack_dataset``; nothing is lost or changed without a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import qudata
from qudata.cli import cli

SHAPES = Path(__file__).parent / "data" / "shapes"
FAST = {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}


def pack(
    tmp_path: Path, names: list[str], *, formats: list[str] | None = None, **sections: Any
) -> tuple[Path, Any]:
    config: dict[str, Any] = json.loads(json.dumps(FAST))
    for key, value in sections.items():
        config.setdefault(key, {}).update(value)
    out = tmp_path / "out"
    report = qudata.pack_dataset(
        [SHAPES / n for n in names],
        out,
        config=config,
        formats=formats or ["chatml", "jsonl", "plain", "preference"],
    )
    assert report.balanced()
    return out, report


def records(out: Path, fmt: str) -> list[dict[str, Any]]:
    """The records of a format, messages without the keys the output fills with null
    (every message has every key the output uses; tested in test_readback)."""
    (path,) = sorted((out / fmt).glob("*.jsonl"))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        if isinstance(row.get("messages"), list):
            row["messages"] = [
                {k: v for k, v in m.items() if v is not None} for m in row["messages"]
            ]
    return rows


def rejects(out: Path) -> list[dict[str, Any]]:
    text = (out / "rejects.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


# ---------------------------------------------------------------- tools


def test_tool_calls_show_in_jsonl_and_plain(tmp_path: Path) -> None:
    out, _ = pack(
        tmp_path,
        ["openai_tools.jsonl"],
        formats=["jsonl", "plain"],
        pack={"jsonl": {"fields": ["text", "messages", "tools"]}},
    )
    first = records(out, "jsonl")[0]
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}' in first["text"]
    assert first["messages"][2]["tool_calls"][0]["id"] == "call_a"
    assert first["tools"][0]["function"]["name"] == "get_weather"
    plain = (out / "plain" / "train-00000-of-00001.txt").read_text(encoding="utf-8")
    assert 'assistant: <tool_call>\n{"name": "get_weather"' in plain
    assert "assistant: \n" not in plain and not plain.count("assistant: \n\n")


def test_sharegpt_tools_string_and_top_level_system(tmp_path: Path) -> None:
    out, report = pack(tmp_path, ["sharegpt_tools.jsonl"], formats=["chatml"])
    (glaive,) = records(out, "chatml")  # the bing record: unknown_role without role_map
    assert report.formats["chatml"].dropped == {"unknown_role": 1}
    assert glaive["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    assert glaive["messages"][0] == {"role": "system", "content": "You are a weather bot."}
    assert glaive["messages"][2]["tool_calls"][0]["function"]["arguments"] == {"city": "Lima"}
    assert glaive["messages"][3]["tool_call_id"] == glaive["messages"][2]["tool_calls"][0]["id"]


def test_role_map_extends_the_roles(tmp_path: Path) -> None:
    out, report = pack(
        tmp_path,
        ["sharegpt_tools.jsonl"],
        formats=["chatml"],
        input={"role_map": {"bing": "assistant"}},
    )
    assert report.formats["chatml"].documents == 2
    assert records(out, "chatml")[1]["messages"][1] == {"role": "assistant", "content": "Hi there."}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("keep", "You are a weather bot."), ("replace", "Default."), ("drop", None)],
)
def test_system_policy_decides_for_a_top_level_system(
    tmp_path: Path, policy: str, expected: str | None
) -> None:
    chatml = {"system_message": "Default.", "system_policy": policy}
    out, _ = pack(tmp_path, ["sharegpt_tools.jsonl"], formats=["chatml"], pack={"chatml": chatml})
    first = records(out, "chatml")[0]["messages"][0]
    if expected is None:
        assert first["role"] == "user"
    else:
        assert first == {"role": "system", "content": expected}


def test_dedup_keys_include_tool_calls_and_schemas(tmp_path: Path) -> None:
    base = json.loads((SHAPES / "openai_tools.jsonl").read_text(encoding="utf-8").splitlines()[1])
    other_schema = json.loads(json.dumps(base))
    other_schema["tools"][0]["function"]["description"] = "Another description."
    other_call = json.loads(json.dumps(base))
    other_call["messages"][1]["tool_calls"][0]["function"]["name"] = "get_clock"
    lines = [base, dict(base), other_schema, other_call]
    for number, row in enumerate(lines):
        row["id"] = f"r{number}"
    path = tmp_path / "tools.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    for method in ("exact", "near"):
        cfg = {**FAST, "dedup": {"method": method}}
        report = qudata.pack_dataset(path, tmp_path / method, config=cfg, formats=["chatml"])
        assert report.dropped == {"duplicate_exact": 1}, method  # only the true copy


# ---------------------------------------------------------------- parts, roles, history, columns


def test_alpaca_history_becomes_earlier_turns(tmp_path: Path) -> None:
    out, _ = pack(
        tmp_path,
        ["alpaca_history.jsonl"],
        formats=["chatml"],
        pack={"chatml": {"include_metadata": True}},
    )
    (record,) = records(out, "chatml")
    assert [(m["role"], m["content"]) for m in record["messages"]] == [
        ("system", "Be brief."),
        ("user", "What is 2+2?"),
        ("assistant", "4."),
        ("user", "And times 3?"),
        ("assistant", "12."),
    ]
    assert "history" not in record["metadata"] and "system" not in record["metadata"]


def test_dolly_with_input_columns(tmp_path: Path) -> None:
    columns = {"prompt": "instruction", "query": "context", "response": "response"}
    out, _ = pack(tmp_path, ["dolly.jsonl"], formats=["chatml"], input={"columns": columns})
    (record,) = records(out, "chatml")
    assert record["messages"] == [
        {"role": "user", "content": "Summarise the text.\n\nOslo is the capital of Norway."},
        {"role": "assistant", "content": "Oslo is Norway's capital."},
    ]


def test_column_option_on_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "fast.yaml"
    config.write_text(json.dumps(FAST), encoding="utf-8")
    out = tmp_path / "out"
    args = ["pack", str(SHAPES / "dolly.jsonl"), "-o", str(out), "-c", str(config), "-f", "chatml"]
    mapped = ["--column", "prompt=instruction", "--column", "query=context"]
    result = CliRunner().invoke(cli, [*args, *mapped, "--column", "response=response", "-q"])
    assert result.exit_code == 0, result.output
    assert "Oslo is the capital" in records(out, "chatml")[0]["messages"][0]["content"]
    result = CliRunner().invoke(cli, [*args, "--column", "prompt"])
    assert result.exit_code == 2 and "expected NAME=KEY" in result.output
    result = CliRunner().invoke(cli, [*args, "--column", "answer=response"])
    assert result.exit_code == 2
    assert "unknown column 'answer'" in result.output and "Traceback" not in result.output


def test_input_tags_name_the_turn_keys(tmp_path: Path) -> None:
    tags = {
        "role_tag": "speaker",
        "content_tag": "says",
        "user_tag": "customer",
        "assistant_tag": "agent",
    }
    out, _ = pack(
        tmp_path,
        ["tags.jsonl"],
        formats=["chatml"],
        input={"columns": {"messages": "dialog"}, "tags": tags},
    )
    assert records(out, "chatml")[0]["messages"] == [
        {"role": "user", "content": "Is it open?"},
        {"role": "assistant", "content": "Yes, until 6."},
    ]


# ---------------------------------------------------------------- preference


def test_preference_records_of_every_source_kind(tmp_path: Path) -> None:
    names = ["preference_llamafactory.jsonl", "preference_trl.jsonl", "preference_hh.jsonl"]
    out, report = pack(tmp_path, names, formats=["preference", "chatml"])
    got = records(out, "preference")
    assert [r["chosen"] for r in got] == [
        [{"role": "assistant", "content": "Hi!"}],
        [{"role": "assistant", "content": "Lima."}],
        [{"role": "assistant", "content": "4"}],
        [{"role": "assistant", "content": "Blue."}],
        [{"role": "assistant", "content": "6."}],
    ]
    assert got[0]["prompt"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Say hi."},
    ]
    assert got[3]["prompt"] == [{"role": "user", "content": "Colour of the sky?"}]
    assert got[4]["prompt"] == [
        {"role": "user", "content": "Can you help me?"},
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "What is 3+3?"},
    ]
    assert got[4]["rejected"] == [{"role": "assistant", "content": "No idea."}]
    assert report.formats["preference"].sources == {"ranking": 1, "preference": 3, "hh_rlhf": 1}
    # SFT formats write the chosen conversation, counted by source kind
    chatml = records(out, "chatml")
    assert [r["messages"][-1]["content"] for r in chatml] == ["Hi!", "Lima.", "4", "Blue.", "6."]
    assert report.formats["chatml"].sources == {"ranking": 1, "preference": 3, "hh_rlhf": 1}


def test_preference_output_loads_in_datasets_and_trl(tmp_path: Path) -> None:
    names = ["preference_llamafactory.jsonl", "preference_trl.jsonl", "preference_hh.jsonl"]
    out, _ = pack(tmp_path, names, formats=["preference"])
    datasets = pytest.importorskip("datasets")
    data_utils = pytest.importorskip("trl.data_utils")
    (path,) = sorted((out / "preference").glob("*.jsonl"))
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    assert ds.num_rows == 5 and set(ds.column_names) == {"prompt", "chosen", "rejected"}
    # and through the dataset card's declared features
    card = datasets.load_dataset(str(out), "preference", split="train")
    assert card.num_rows == 5
    from tests.pack.test_chatml_tools import hf_tokenizer

    tokenizer = hf_tokenizer("qwen2_5")
    for example in ds:
        assert data_utils.is_conversational(example)
        rendered = data_utils.maybe_apply_chat_template(example, tokenizer)
        assert set(rendered) >= {"prompt", "chosen", "rejected"}
        assert rendered["prompt"].endswith("<|im_end|>\n<|im_start|>assistant\n")
        assert rendered["chosen"].startswith(example["chosen"][0]["content"])


def test_pairs_are_duplicates_on_prompt_and_chosen(tmp_path: Path) -> None:
    pair = {"prompt": "Capital of Peru?", "chosen": "Lima.", "rejected": "Cusco."}
    lines = [
        {**pair, "id": "a"},
        {**pair, "id": "b", "rejected": "Arequipa."},  # same prompt + chosen: a duplicate
        {**pair, "id": "c", "chosen": "Lima, on the coast."},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    report = qudata.pack_dataset(path, tmp_path / "out", config=FAST, formats=["preference"])
    assert report.dropped == {"duplicate_exact": 1}
    assert [r["id"] for r in rejects(tmp_path / "out")] == ["b"]


# ---------------------------------------------------------------- drops


def test_every_dropped_kind_has_its_reason(tmp_path: Path) -> None:
    out, report = pack(tmp_path, ["dropped.jsonl"], formats=["chatml", "jsonl", "plain"])
    by_id = {(e["id"], e["format"]): e for e in rejects(out)}
    assert by_id["drop-audio-bytes", None]["reason"] == "unsupported_content"
    detail = by_id["drop-audio-bytes", None]["detail"]
    assert "content part of type 'input_audio' (keys: input_audio, type)" in detail
    assert by_id["drop-bad-tools", None]["reason"] == "bad_tools"
    assert by_id["drop-bad-call", None]["reason"] == "bad_tool_call"
    assert by_id["drop-unknown-shape", None]["reason"] == "unknown_shape"
    assert "keys: id, question_text, reply" in by_id["drop-unknown-shape", None]["detail"]
    assert by_id["drop-no-shared-prompt", None]["reason"] == "no_shared_prompt"
    for fmt in ("chatml", "jsonl", "plain"):
        assert by_id["drop-ends-on-user", fmt]["reason"] == "ends_on_user"
    assert by_id["drop-unknown-role", "chatml"]["reason"] == "unknown_role"
    assert report.dropped == {
        "unsupported_content": 1,
        "bad_tools": 1,
        "bad_tool_call": 1,
        "unknown_shape": 1,
        "no_shared_prompt": 1,
    }
    notes = "\n".join(report.notes)
    assert "dropped.jsonl: 6 of 7 records rejected (85%)" in notes
    assert "input.columns" in notes


def test_no_conversation_ends_on_a_user_turn_in_sft_output(tmp_path: Path) -> None:
    out, _ = pack(tmp_path, [p.name for p in sorted(SHAPES.glob("*.jsonl"))], formats=["chatml"])
    for record in records(out, "chatml"):
        assert record["messages"][-1]["role"] == "assistant"


def test_a_run_that_writes_nothing_fails_and_publishes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "fast.yaml"
    config.write_text(json.dumps(FAST), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["pack", str(SHAPES / "dolly.jsonl"), "-o", str(out), "-c", str(config)]
    )
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("Error: nothing was written")
    assert "unknown_shape 1 (e.g. " in result.output
    assert "dolly.jsonl:1: no known shape" in result.output
    assert "input.columns" in result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*"))
    # --dry-run writes nothing by design: not an error
    result = CliRunner().invoke(
        cli, ["pack", str(SHAPES / "dolly.jsonl"), "-o", str(out), "-c", str(config), "--dry-run"]
    )
    assert result.exit_code == 0, result.output


def test_the_summary_notes_and_stats_with_columns(tmp_path: Path) -> None:
    config = tmp_path / "fast.yaml"
    config.write_text(json.dumps(FAST), encoding="utf-8")
    inputs = [str(SHAPES / "dropped.jsonl"), str(SHAPES / "openai_tools.jsonl")]
    result = CliRunner().invoke(
        cli, ["pack", *inputs, "-o", str(tmp_path / "out"), "-c", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert "note: " in result.output and "6 of 7 records rejected (85%)" in result.output
    assert "openai_tools.jsonl: " not in result.output.split("note: ", 1)[1]
    mapped = ["--column", "prompt=instruction", "--column", "response=response", "--json"]
    result = CliRunner().invoke(
        cli, ["stats", str(SHAPES / "dolly.jsonl"), "-c", str(config), *mapped]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["invalid"] == 0
    result = CliRunner().invoke(
        cli, ["stats", str(SHAPES / "dolly.jsonl"), "-c", str(config), "--json"]
    )
    assert json.loads(result.output)["invalid"] == 1
