"""Clean ends: every failure is one ``Error:`` line with the right exit code, nothing
published, no staging left; configuration errors are found before the run."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from qudata.cli import cli

from .hostile_limits import run_qudata, time_limit


def _pack(*args: str) -> Result:
    with time_limit(30):
        return CliRunner().invoke(cli, ["pack", *args], catch_exceptions=False)


def _one_error_line(result: Any, code: int, *needles: str) -> str:
    stderr = result.stderr
    assert getattr(result, "returncode", getattr(result, "exit_code", None)) == code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    for needle in needles:
        assert needle in lines[0]
    return str(lines[0])


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"text": f"doc {i}"}) + b"\n" for i in range(20)))
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".qudata-" in p.name)


def test_an_output_under_a_regular_file_is_a_usage_error(source: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = _pack(str(source), "-o", str(tmp_path / "file" / "out"), "--tokenizer", "none")
    assert result.exit_code == 2
    _one_error_line(result, 2, "cannot be a folder", "is a file")


@pytest.mark.parametrize("seed", [str(2**64), str(2**70), "-1"])
def test_an_out_of_range_seed_is_refused_before_the_run(
    source: Path, tmp_path: Path, seed: str
) -> None:
    out = tmp_path / "out"
    result = _pack(str(source), "-o", str(out), "--seed", seed, "--tokenizer", "none")
    assert result.exit_code == 2
    _one_error_line(result, 2, "output.seed")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_the_largest_seed_is_accepted(source: Path, tmp_path: Path) -> None:
    result = _pack(
        str(source),
        "-o",
        str(tmp_path / "out"),
        "--seed",
        str(2**64 - 1),
        "--split",
        "train=0.5,test=0.5",
        "--shuffle",
        "--tokenizer",
        "none",
        "-q",
    )
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"a:\n" + b"".join(b"  " * i + b"b:\n" for i in range(1, 3000)), ""),
        ("pack:\n  chatml:\n    system_message: caf\xe9\n".encode("latin-1"), "not UTF-8"),
        (b"\xff\xfe\x00\x00", "not UTF-8"),
        (b"output:\n  seed: 2020-13-45\n", "not valid YAML"),  # a date no calendar has
        (b"output:\n  seed: !!int x\n", "not valid YAML"),
    ],
    ids=["deep_flow", "deep_block", "latin1", "utf32", "bad_date", "bad_int"],
)
def test_a_hostile_config_file_is_one_line(
    source: Path, tmp_path: Path, content: bytes, needle: str
) -> None:
    config = tmp_path / "pack.yaml"
    config.write_bytes(content)
    result = _pack(str(source), "-o", str(tmp_path / "out"), "-c", str(config))
    assert result.exit_code == 2
    _one_error_line(result, 2, needle)
    assert not (tmp_path / "out").exists()


def test_a_name_too_long_is_an_io_error(source: Path, tmp_path: Path) -> None:
    out = tmp_path / ("n" * 240)
    result = _pack(str(source), "-o", str(out), "--tokenizer", "none")
    assert result.exit_code == 1
    _one_error_line(result, 1, "File name too long")
    assert _leftovers(tmp_path) == []


def test_a_full_disk_is_an_io_error(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qudata.io import writers

    def full(self: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "somewhere")

    monkeypatch.setattr(writers._HashingFile, "_spill", full)
    result = _pack(str(source), "-o", str(tmp_path / "out"), "--tokenizer", "none")
    assert result.exit_code == 1
    _one_error_line(result, 1, "No space left on device")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []
    assert _open_under(tmp_path) == []  # no file the write failed on is left open


def _open_under(folder: Path) -> list[str]:
    """The files under ``folder`` this process still holds open."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(folder)):
                found.append(target)
    return found


def _mount(target: Path, options: str) -> bool:
    target.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KB file system (needs root; otherwise skipped, the monkeypatch case stays)."""
    disk = tmp_path / "disk"
    if not _mount(disk, "size=64k"):
        pytest.skip("cannot mount a tmpfs here")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_really_full_disk_is_an_io_error(tiny_disk: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    big.write_bytes(
        b"".join(orjson.dumps({"text": f"document {i} " + "x" * 500}) + b"\n" for i in range(400))
    )
    result = run_qudata(["pack", str(big), "-o", str(tiny_disk / "out"), "--tokenizer", "none"])
    _one_error_line(result, 1, "No space left on device")
    assert result.returncode == 1
    assert list(tiny_disk.iterdir()) == []


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write in: a read-only mount as root, else mode 555."""
    folder = tmp_path / "locked"
    if os.geteuid() == 0:
        if not _mount(folder, "ro,size=64k"):
            pytest.skip("root, and cannot mount a read-only tmpfs")
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def test_an_unwritable_output_parent_is_an_io_error(source: Path, unwritable: Path) -> None:
    result = run_qudata(["pack", str(source), "-o", str(unwritable / "out"), "--tokenizer", "none"])
    assert result.returncode == 1
    line = _one_error_line(result, 1)
    assert "Read-only file system" in line or "Permission denied" in line
