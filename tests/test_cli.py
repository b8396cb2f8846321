"""The ``qudata`` command: exit codes, one-line errors, help for every option."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
from click.testing import CliRunner, Result

import qudata
from qudata.cli import cli

FAST = ["--tokenizer", "none", "--quiet"]


def run(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def manifest(out: Path) -> dict[str, Any]:
    return orjson.loads((out / "manifest.json").read_bytes())


def no_limit_config(tmp_path: Path, extra: str = "") -> Path:
    """A config that needs no tokenizer (the ChatML limit off)."""
    path = tmp_path / "fast.yaml"
    path.write_text(
        "quality:\n  tokenizer: none\npack:\n  chatml:\n    max_tokens_per_message: null\n" + extra,
        encoding="utf-8",
    )
    return path


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_pack_writes_the_folder(docs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        "pack", str(docs_file), "-o", str(out), "-c", str(no_limit_config(tmp_path)), "--quiet"
    )
    assert result.exit_code == 0, result.output
    assert (out / "chatml" / "train-00000-of-00001.jsonl").is_file()
    assert (out / "jsonl" / "train-00000-of-00001.jsonl").is_file()
    assert (out / "plain" / "train-00000-of-00001.txt").is_file()
    assert manifest(out)["counts"]["read"] == 5


def test_pack_prints_a_summary_unless_quiet(docs_file: Path, tmp_path: Path) -> None:
    cfg = str(no_limit_config(tmp_path))
    loud = run("pack", str(docs_file), "-o", str(tmp_path / "a"), "-c", cfg)
    quiet = run("pack", str(docs_file), "-o", str(tmp_path / "b"), "-c", cfg, "--quiet")
    assert loud.exit_code == quiet.exit_code == 0
    assert loud.stdout.strip()
    assert quiet.stdout == ""


def test_pack_with_tokenizer_none_option(docs_file: Path, tmp_path: Path) -> None:
    """``--tokenizer none`` alone must work: the default ChatML limit is not "explicit"."""
    out = tmp_path / "out"
    result = run("pack", str(docs_file), "-o", str(out), *FAST)
    assert result.exit_code == 0, result.output
    assert manifest(out)["config"]["quality"]["tokenizer"] == "none"


def test_pack_reads_stdin(tmp_path: Path) -> None:
    out = tmp_path / "out"
    data = b'{"id": "s1", "text": "From stdin \xc3\xa9."}\n{"id": "s2", "text": "Two."}\n'
    result = run(
        "pack",
        "-",
        "-o",
        str(out),
        "-c",
        str(no_limit_config(tmp_path)),
        "-f",
        "jsonl",
        "--quiet",
        input=data,
    )
    assert result.exit_code == 0, result.output
    lines = (out / "jsonl" / "train-00000-of-00001.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x)["text"] for x in lines] == ["From stdin é.", "Two."]


def test_format_option_selects_formats(docs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        "pack",
        str(docs_file),
        "-o",
        str(out),
        "-c",
        str(no_limit_config(tmp_path)),
        "-f",
        "plain",
        "-f",
        "jsonl",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["jsonl", "plain"]


def test_misspelt_config_key_exit_2_one_line(docs_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("pack:\n  chatml:\n    sytem_message: hi\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run("pack", str(docs_file), "-o", str(out), "-c", str(config))
    assert_one_line_error(
        result, 2, "Error: unknown key 'pack.chatml.sytem_message'", "system_message"
    )
    assert not out.exists()


def test_unsafe_yaml_config_exit_2(docs_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "evil.yaml"
    config.write_text("pack: !!python/object/apply:os.getcwd []\n", encoding="utf-8")
    result = run("pack", str(docs_file), "-o", str(tmp_path / "out"), "-c", str(config))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.startswith("Error: ")
    assert "not valid YAML" in result.stderr.splitlines()[0]


def test_on_error_fail_exit_1_with_file_and_line(bad_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        "pack",
        str(bad_file),
        "-o",
        str(out),
        "-c",
        str(no_limit_config(tmp_path)),
        "--on-error",
        "fail",
        "--quiet",
    )
    assert_one_line_error(result, 1, f"{bad_file}:2")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_lines_are_skipped_by_default(bad_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        "pack", str(bad_file), "-o", str(out), "-c", str(no_limit_config(tmp_path)), "--quiet"
    )
    assert result.exit_code == 0, result.output
    assert manifest(out)["counts"]["dropped"] == {"invalid": 4, "unknown_shape": 1}


def test_non_empty_output_exit_2(docs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.txt").write_text("keep")
    result = run("pack", str(docs_file), "-o", str(out), "-c", str(no_limit_config(tmp_path)))
    assert_one_line_error(result, 2, "not empty")
    assert (out / "x.txt").read_text() == "keep"


def test_overwrite_flag(docs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["pack", str(docs_file), "-o", str(out), "-c", str(no_limit_config(tmp_path)), "-q"]
    assert run(*args).exit_code == 0
    (out / "x.txt").write_text("old")
    result = run(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "x.txt").exists()


def test_overwrite_flag_refuses_a_folder_that_is_not_a_dataset(
    docs_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.txt").write_text("old")
    config = str(no_limit_config(tmp_path))
    result = run("pack", str(docs_file), "-o", str(out), "-c", config, "--overwrite", "-q")
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and "replaces only a qudata dataset" in result.output
    assert (out / "x.txt").read_text() == "old"


def test_missing_input_exit_2(tmp_path: Path) -> None:
    result = run(
        "pack",
        str(tmp_path / "nope.jsonl"),
        "-o",
        str(tmp_path / "out"),
        "-c",
        str(no_limit_config(tmp_path)),
    )
    assert result.exit_code == 2
    assert result.output == f"Error: {tmp_path / 'nope.jsonl'}: no such file or folder\n"
    assert "Traceback" not in result.output
    assert "nope.jsonl" in result.stderr


def test_text_key_option(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"raw_content": "Raw."}\n')
    out = tmp_path / "out"
    result = run(
        "pack",
        str(src),
        "-o",
        str(out),
        "-c",
        str(no_limit_config(tmp_path)),
        "--text-key",
        "raw_content",
        "-f",
        "jsonl",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    line = orjson.loads((out / "jsonl" / "train-00000-of-00001.jsonl").read_bytes())
    assert line["text"] == "Raw."


# --- options that change the run must change the run ---


def test_min_quality_option_drops(docs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("pack", str(docs_file), "-o", str(out), *FAST, "--min-quality", "0.8")
    assert result.exit_code == 0, result.output
    counts = manifest(out)["counts"]
    assert counts["dropped"].get("low_quality") == 2  # 0.72 and 0.4; unscored kept
    assert counts["accepted"] == 3


def test_dedup_option(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "Same."}\n{"text": "Same."}\n')
    out = tmp_path / "out"
    result = run("pack", str(src), "-o", str(out), *FAST, "--dedup", "none", "-f", "jsonl")
    assert result.exit_code == 0, result.output
    assert manifest(out)["counts"]["accepted"] == 2


def test_dedup_memory_option_is_checked_as_a_size(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "Same."}\n')
    out = tmp_path / "out"
    result = run("pack", str(src), "-o", str(out), *FAST, "--dedup-memory", "100KB")
    assert result.exit_code == 2
    assert "dedup.memory" in result.output and "at least 1MiB" in result.output
    result = run("pack", str(src), "-o", str(out), *FAST, "--dedup-memory", "2MB", "-q")
    assert result.exit_code == 0, result.output


def test_compression_option(docs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        "pack", str(docs_file), "-o", str(out), *FAST, "--compression", "gzip", "-f", "jsonl"
    )
    assert result.exit_code == 0, result.output
    path = out / "jsonl" / "train-00000-of-00001.jsonl.gz"
    assert len(gzip.decompress(path.read_bytes()).splitlines()) == 5


def test_shard_records_option(docs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        "pack", str(docs_file), "-o", str(out), *FAST, "--shard-records", "2", "-f", "jsonl"
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (out / "jsonl").iterdir())
    assert names == [f"train-0000{i}-of-00003.jsonl" for i in range(3)]


def test_split_option(docs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        "pack",
        str(docs_file),
        "-o",
        str(out),
        *FAST,
        "--split",
        "train=0.5,test=0.5",
        "-f",
        "jsonl",
    )
    assert result.exit_code == 0, result.output
    files = manifest(out)["formats"]["jsonl"]["files"]
    assert {f["split"] for f in files} <= {"train", "test"}
    assert sum(f["documents"] for f in files) == 5
    assert manifest(out)["config"]["output"]["split"] == {"train": 0.5, "test": 0.5}


def test_dry_run_writes_nothing(docs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("pack", str(docs_file), "-o", str(out), *FAST, "--dry-run")
    assert result.exit_code == 0, result.output
    assert not out.exists()


# --- other commands ---


def test_validate_golden_files_are_clean(data_dir: Path) -> None:
    golden = data_dir / "golden"
    assert run("validate", "--format", "jsonl", str(golden / "jsonl.jsonl")).exit_code == 0
    assert run("validate", "--format", "plain", str(golden / "plain.txt")).exit_code == 0
    assert (
        run(
            "validate", "--format", "chatml", "--tokenizer", "none", str(golden / "chatml.jsonl")
        ).exit_code
        == 0
    )


def test_validate_broken_file_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"messages": []}\n')
    result = run("validate", "--format", "chatml", "--tokenizer", "none", str(path))
    assert result.exit_code == 1
    assert "Traceback" not in result.output


def test_stats_json(docs_file: Path) -> None:
    result = run("stats", str(docs_file), "--tokenizer", "none", "--json")
    assert result.exit_code == 0, result.output
    assert isinstance(orjson.loads(result.stdout), dict)


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert qudata.__version__ in result.output


def _commands() -> list[tuple[str, click.Command]]:
    assert isinstance(cli, click.Group)
    return sorted(cli.commands.items())


def test_expected_commands_exist() -> None:
    assert {"pack", "stats", "validate"} <= {name for name, _ in _commands()}


@pytest.mark.parametrize(("name", "command"), _commands(), ids=[n for n, _ in _commands()])
def test_every_command_help_mentions_every_option(name: str, command: click.Command) -> None:
    result = run(name, "--help")
    assert result.exit_code == 0
    assert "Traceback" not in result.output
    for param in command.params:
        if isinstance(param, click.Option):
            longest = max(param.opts + param.secondary_opts, key=len)
            assert longest in result.output, f"{name} --help does not mention {longest}"
            assert param.help, f"{name} {longest} has no help text"
        else:
            assert (param.human_readable_name or "").upper() in result.output


def test_group_help_lists_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for name, _ in _commands():
        assert name in result.output


def test_min_quality_warns_about_documents_without_a_score(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": "a", "text": "Scored low.", "quality_score": 0.1},
        {"id": "b", "text": "No score."},
        {"id": "c", "text": "No score either."},
    ]
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    result = run("pack", str(src), "-o", str(tmp_path / "out"), "--min-quality", "0.5", *FAST)
    assert result.exit_code == 0
    assert result.stderr == (
        "Warning: min_quality_score 0.5: 2 of 3 documents had no quality_score and were kept "
        "unfiltered (quality.missing_score: keep; set it to drop or score to filter them)\n"
    )
    assert manifest(tmp_path / "out")["counts"]["dropped"] == {"low_quality": 1}
    scored = run("pack", str(src), "-o", str(tmp_path / "o2"), *FAST)
    assert scored.stderr == ""  # no threshold, nothing to warn about
