"""Bounded lines and documents: a long line is rejected while it is read, /dev/zero ends,
and a reject keeps a bounded prefix of the bad input."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import yaml

import qudata
from qudata.errors import ConfigError, InputError
from qudata.io.lines import LongLine, read_lines

from .conftest import (
    FAST,
    good_input,
    manifest,
    one_error_line,
    qudata_process,
    rejects,
)

MEMORY = 1 << 30  # address space of a child: qudata itself needs about 300 MB


def _config(tmp_path: Path, **input_section: object) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**FAST, "input": input_section}))
    return path


def test_read_lines_yields_a_long_line_as_its_size_and_prefix() -> None:
    stream = io.BufferedReader(io.BytesIO(b"short\n" + b"x" * 5000 + b"\nafter\nlast"), 64)
    lines = list(read_lines(stream, 100))
    assert lines[0] == b"short\n"
    assert isinstance(lines[1], LongLine) and lines[1].size == 5001
    assert lines[1].prefix == b"x" * 101 and not lines[1].binary  # what was read: limit + 1
    assert lines[2:] == [b"after\n", b"last"]


def test_a_line_of_exactly_the_limit_is_kept() -> None:
    stream = io.BytesIO(b"a" * 10 + b"\n" + b"b" * 10)
    assert list(read_lines(stream, 10)) == [b"a" * 10 + b"\n", b"b" * 10]


def test_a_long_line_with_nul_bytes_ends_the_input() -> None:
    stream = io.BytesIO(b"ok\n" + b"\0" * 500 + b"\nnever read\n")
    lines = list(read_lines(stream, 100))
    assert lines[0] == b"ok\n"
    assert isinstance(lines[1], LongLine) and lines[1].binary and len(lines) == 2


def test_long_lines_are_rejected_and_the_rest_is_read(tmp_path: Path) -> None:
    rows = [orjson.dumps({"text": f"row {i}"}) for i in range(5)]
    rows[2] = orjson.dumps({"text": "y" * 50_000})
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(rows) + b"\n"))
    config = {**FAST, "input": {"max_line_bytes": "10KB"}}
    report = qudata.pack_dataset(path, tmp_path / "out", config=config)
    assert (report.read, report.accepted, report.dropped["line_too_long"]) == (5, 4, 1)
    (reject,) = rejects(tmp_path / "out")
    assert reject["line"] == 3 and reject["reason"] == "line_too_long"
    assert "a line of 50,012 bytes, over the limit of 10,000" in reject["detail"]
    assert len(reject["detail"]) < 400


def test_a_long_line_stops_the_run_under_fail(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "' + b"z" * 2000 + b'"}\n')
    config = {**FAST, "input": {"max_line_bytes": 1000, "on_error": "fail"}}
    with pytest.raises(InputError, match=r"in\.jsonl:1: a line of 2,013 bytes"):
        qudata.pack_dataset(path, tmp_path / "out", config=config)


@pytest.mark.parametrize("value", ["0", "-5", "lots", 0])
def test_max_line_bytes_must_be_a_positive_size(value: object) -> None:
    with pytest.raises(ConfigError, match=r"input\.max_line_bytes"):
        qudata.load_config({"input": {"max_line_bytes": value}})


def test_dev_zero_on_stdin_ends_with_a_reject_in_bounded_memory(tmp_path: Path) -> None:
    config = _config(tmp_path, max_line_bytes="1MB")
    with open("/dev/zero", "rb") as zero:
        done = qudata_process(
            "pack",
            "-",
            "-o",
            "out",
            "-c",
            str(config),
            "-q",
            cwd=tmp_path,
            stdin=zero,
            memory=MEMORY,
            timeout=30,
        )
    # its only record is rejected: a run that writes nothing fails and publishes nothing
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.decode().splitlines()
    assert line.startswith("Error: nothing was written") and "line_too_long 1" in line
    assert "NUL bytes" in line and len(line) < 600
    assert not (tmp_path / "out").exists()


def test_dev_zero_on_stdin_with_the_default_limit(tmp_path: Path) -> None:
    """The default limit (64 MB) also ends, within the memory cap."""
    with open("/dev/zero", "rb") as zero:
        done = qudata_process(
            "pack",
            "-",
            "-o",
            "out",
            "--tokenizer",
            "none",
            "-q",
            "--on-error",
            "fail",
            cwd=tmp_path,
            stdin=zero,
            memory=MEMORY,
        )
    assert done.returncode == 1
    line = one_error_line(done.stderr.decode())
    assert line.startswith("Error: <stdin>:1: a line of at least 64,000,001 bytes")


def test_validate_dev_zero_ends_with_a_problem_in_bounded_memory(tmp_path: Path) -> None:
    done = qudata_process(
        "validate", "/dev/zero", "--format", "jsonl", "--json", cwd=tmp_path, memory=MEMORY
    )
    assert done.returncode == 1, done.stderr
    (result,) = orjson.loads(done.stdout)
    codes = [p["code"] for p in result["problems"]]
    assert codes == ["line_too_long"]
    assert "NUL bytes" in result["problems"][0]["message"]


def test_a_small_bomb_of_bad_lines_gives_small_rejects(tmp_path: Path) -> None:
    """One 20 MB line of garbage compresses to a few kilobytes; its reject stays small."""
    import zstandard

    bomb = zstandard.ZstdCompressor().compress(b"{" + b"\x01" * (20 << 20) + b"\n" + b"[1]\n")
    (tmp_path / "bomb.jsonl.zst").write_bytes(bomb)
    assert len(bomb) < 10_000
    report = qudata.pack_dataset(
        [tmp_path / "bomb.jsonl.zst", good_input(tmp_path)],
        tmp_path / "out",
        config={**FAST, "input": {"max_line_bytes": "1MB"}},
    )
    assert report.dropped == {"line_too_long": 1, "invalid": 1}
    assert (tmp_path / "out" / "rejects.jsonl").stat().st_size < 2000


def test_a_reject_keeps_a_bounded_detail_and_id(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(orjson.dumps({"id": "i" * 100_000, "text": 5}) + b"\n")
    qudata.pack_dataset([path, good_input(tmp_path)], tmp_path / "out", config=FAST)
    (reject,) = rejects(tmp_path / "out")
    assert reject["reason"] == "invalid"
    assert len(reject["id"]) < 1100 and reject["id"].startswith("iii")
    assert (tmp_path / "out" / "rejects.jsonl").stat().st_size < 2000


def test_max_document_chars(tmp_path: Path, jsonl: Callable[..., Path]) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"text": "w" * n}) + b"\n" for n in (10, 11, 100)))
    config = {**FAST, "input": {"max_document_chars": 11}}
    report = qudata.pack_dataset(path, tmp_path / "out", config=config)
    assert (report.accepted, report.dropped["document_too_long"]) == (2, 1)
    (reject,) = rejects(tmp_path / "out")
    assert reject["line"] == 3
    assert "a document of 100 characters, over the limit of 11" in reject["detail"]
    assert qudata.load_config({}).input.max_document_chars is None  # long texts are fine


def test_a_text_file_surely_over_max_document_chars_is_not_held(tmp_path: Path) -> None:
    """4 bytes a character at most: a file over 4 x the limit is rejected unread (but
    hashed); one under it is decoded and measured."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "big.txt").write_bytes(b"w" * 5000)
    (tmp_path / "in" / "mid.txt").write_bytes("é".encode() * 300)  # 600 bytes, 300 chars
    (tmp_path / "in" / "ok.txt").write_bytes(b"fine")
    config = {**FAST, "input": {"max_document_chars": 250}}
    report = qudata.pack_dataset(tmp_path / "in", tmp_path / "out", config=config)
    assert (report.accepted, report.dropped["document_too_long"]) == (1, 2)
    details = {r["source"]: r["detail"] for r in rejects(tmp_path / "out")}
    assert details["big.txt"].startswith("a text file of 5,000 bytes: more than 250 characters")
    assert details["mid.txt"].startswith("a document of 300 characters")
    assert all(i["sha256"] for i in manifest(tmp_path / "out")["inputs"])
