"""Input-side clean ends: a missing input is a usage error (exit 2), a byte order mark is
not a bad record, and every input error is one ``Error:`` line."""

from __future__ import annotations

from pathlib import Path

import pytest

import qudata

from .conftest import FAST, FAST_ARGS, one_error_line, qudata_cli, qudata_process, rejects

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("missing.jsonl", "missing.jsonl: no such file or folder"),
        ("nothing-*.jsonl", "nothing-*.jsonl: no file matches this pattern"),
        ("notes.csv", "notes.csv: unknown input type"),
        ("empty", "empty: folder holds no .jsonl, .json, .parquet, .txt or .md files"),
    ],
)
def test_an_input_that_names_nothing_to_read_exits_2(
    tmp_path: Path, argument: str, message: str
) -> None:
    (tmp_path / "notes.csv").write_text("a,b\n")
    (tmp_path / "empty").mkdir()
    result = qudata_cli("pack", argument, "-o", "out", *FAST_ARGS, cwd=tmp_path)
    assert result.exit_code == 2
    assert one_error_line(result.output).startswith(f"Error: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "notes.csv"]


def test_a_missing_input_exits_2_from_a_real_process(tmp_path: Path) -> None:
    done = qudata_process("pack", "missing.jsonl", "-o", "out", *FAST_ARGS, cwd=tmp_path)
    assert done.returncode == 2
    assert one_error_line(done.stderr.decode()) == "Error: missing.jsonl: no such file or folder"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("in.jsonl", BOM + b'{"id": "a", "text": "First."}\n{"id": "b", "text": "Second."}\n'),
        ("in.json", BOM + b'[{"id": "a", "text": "First."}, {"id": "b", "text": "Second."}]'),
        ("in.txt", BOM + b"First."),
    ],
)
def test_a_leading_byte_order_mark_is_skipped(tmp_path: Path, name: str, body: bytes) -> None:
    (tmp_path / name).write_bytes(body)
    report = qudata.pack_dataset(tmp_path / name, tmp_path / "out", config=FAST, formats=["jsonl"])
    assert not report.dropped
    assert report.accepted == (1 if name == "in.txt" else 2)
    assert rejects(tmp_path / "out") == []
    text = next((tmp_path / "out" / "jsonl").glob("*.jsonl")).read_text(encoding="utf-8")
    assert "\ufeff" not in text and '"First."' in text


def test_a_byte_order_mark_inside_a_file_is_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_bytes(b'{"text": "a"}\n' + BOM + b'{"text": "b"}\n')
    report = qudata.pack_dataset(tmp_path / "in.jsonl", tmp_path / "out", config=FAST)
    assert report.dropped == {"invalid": 1}
