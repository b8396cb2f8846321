"""KTO: TRL's unpaired preference records, from LLaMA-Factory and TRL KTO data and from
preference pairs; no other format trains on an undesirable completion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import qudata
from qudata.pack.kto import KTOFormatter, validate_kto

SHAPES = Path(__file__).parents[1] / "data" / "shapes"
FAST = {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def source_rows() -> list[dict[str, Any]]:
    return json.loads((SHAPES / "kto_llamafactory.json").read_text()) + lines(
        SHAPES / "kto_trl.jsonl"
    )


def pack(tmp_path: Path, config: dict[str, Any] | None = None, **kw: Any) -> tuple[Path, Any]:
    out = tmp_path / "out"
    report = qudata.pack_dataset(
        [SHAPES / "kto_llamafactory.json", SHAPES / "kto_trl.jsonl"],
        out,
        config={**FAST, **(config or {})},
        **kw,
    )
    assert report.balanced()
    return out, report


def test_kto_records_round_trip_value_by_value(tmp_path: Path) -> None:
    out, report = pack(tmp_path, formats=["kto", "chatml"])
    (path,) = sorted((out / "kto").glob("*.jsonl"))
    got = lines(path)
    expected = []
    for row in source_rows():
        if "messages" in row:
            messages = row["messages"]
            expected.append(
                {"prompt": messages[:-1], "completion": messages[-1:], "label": row["label"]}
            )
        elif isinstance(row["prompt"], str):
            expected.append({
                "prompt": [{"role": "user", "content": row["prompt"]}],
                "completion": [{"role": "assistant", "content": row["completion"]}],
                "label": row["label"],
            })  # fmt: skip
        else:
            expected.append(row)
    assert got == expected
    # the SFT format never trains on the undesirable ones: dropped, counted, named
    assert report.formats["chatml"].documents == 4
    assert report.formats["chatml"].dropped == {"undesirable_completion": 3}
    assert report.formats["kto"].events["kto_undesirable"] == 3
    rejects = lines(out / "rejects.jsonl")
    assert [r["reason"] for r in rejects] == ["undesirable_completion"] * 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["input_keys"]["mapped"]["label"] == 7


def test_undesirable_keep_is_an_option(tmp_path: Path) -> None:
    _, report = pack(tmp_path, {"input": {"undesirable": "keep"}}, formats=["chatml"])
    assert report.formats["chatml"].documents == 7


def test_llamafactory_kto_tag_column(tmp_path: Path) -> None:
    path = tmp_path / "kto.jsonl"
    rows = [
        {"conv": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}],
         "tag": flag}
        for flag in (True, False)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {**FAST, "input": {"columns": {"messages": "conv", "kto_tag": "tag"}}}
    records = KTOFormatter(config).format_documents(rows)
    assert [r["label"] for r in records] == [True, False]
    report = qudata.pack_dataset(path, tmp_path / "out", config=config, formats=["kto"])
    assert report.input_keys["mapped"] == {"conv": 2, "tag": 2}


def test_pairs_are_unpaired_like_trl() -> None:
    data_utils = pytest.importorskip("trl.data_utils")
    datasets = pytest.importorskip("datasets")
    pair = {
        "prompt": [{"role": "user", "content": "2+2?"}],
        "chosen": [{"role": "assistant", "content": "4"}],
        "rejected": [{"role": "assistant", "content": "5"}],
    }
    ours = KTOFormatter({"quality": {"tokenizer": "none"}}).format_documents([pair])
    theirs = data_utils.unpair_preference_dataset(datasets.Dataset.from_list([pair]))
    assert ours == theirs.to_list()
    unpaired = KTOFormatter({"quality": {"tokenizer": "none"}}, unpair=False)
    assert unpaired.format_documents([pair]) == []
    assert unpaired.stats.dropped == {"not_kto": 1}


def test_a_label_on_a_text_document_is_refused() -> None:
    formatter = KTOFormatter({"quality": {"tokenizer": "none"}})
    with pytest.raises(qudata.InputError, match=r"KTO label.*a text document"):
        formatter.format_documents([{"text": "plain", "label": True}])
    with pytest.raises(qudata.InputError, match="must be true or false"):
        formatter.format_documents(
            [{"messages": [{"role": "user", "content": "x"}], "kto_tag": "yes"}]
        )


def test_datasets_and_trl_read_the_output(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    data_utils = pytest.importorskip("trl.data_utils")
    out, _ = pack(tmp_path, formats=["kto", "chatml"])
    ds = datasets.load_dataset(str(out), "kto", split="train")
    assert ds.num_rows == 7
    assert ds.features["label"].dtype == "bool"
    from tests.pack.test_chatml_tools import hf_tokenizer

    tokenizer = hf_tokenizer("qwen2_5")
    for example in ds:
        assert data_utils.is_conversational(example)
        rendered = data_utils.maybe_apply_chat_template(example, tokenizer)
        assert set(rendered) == {"prompt", "completion", "label"}
        assert rendered["prompt"].endswith("<|im_start|>assistant\n")
        assert rendered["completion"].startswith(example["completion"][0]["content"])


def test_a_format_that_wrote_nothing_is_stated(tmp_path: Path) -> None:
    _, report = pack(tmp_path, formats=["chatml", "preference"])
    assert report.formats["preference"].documents == 0
    assert any("format 'preference' wrote nothing" in c for c in report.cautions)


USER = {"role": "user", "content": "Q"}
ANSWER = {"role": "assistant", "content": "A"}
#: one broken KTO record per code, and the code ``qudata validate -f kto`` reports
BROKEN_KTO = [
    ({"prompt": [USER], "completion": [ANSWER]}, "missing_kto_field"),
    ({"prompt": [USER, ANSWER], "completion": [ANSWER], "label": True},
     "kto_prompt_not_user_last"),
    ({"prompt": [USER], "completion": [USER], "label": False}, "answer_not_assistant"),
]  # fmt: skip


def test_validate_kto_finds_every_planted_problem(tmp_path: Path) -> None:
    from qudata.quality.validate import validate_file

    good = {"prompt": [USER], "completion": [ANSWER], "label": True}
    assert validate_kto(good) == []
    for record, code in BROKEN_KTO:
        assert [p.code for p in validate_kto(record)] == [code]
    path = tmp_path / "kto.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r, _ in BROKEN_KTO) + json.dumps(good) + "\n")
    result = validate_file(str(path), "kto")
    assert [(p.line, p.code) for p in result.problems] == [
        (n, code) for n, (_, code) in enumerate(BROKEN_KTO, 1)
    ]
