"""Never touch what is not ours: the output folder against the inputs, --overwrite, the
lock, and recovery after a killed publish."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import qudata
from qudata.errors import OutputError
from qudata.io.output_dir import OutputLock

from .conftest import (
    FAST,
    FAST_ARGS,
    manifest,
    one_error_line,
    qudata_cli,
    qudata_process,
    tree,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- the output folder is never an input, around one, or inside one ---


def test_output_that_holds_the_input_file_is_refused_and_nothing_is_deleted(
    tmp_path: Path, jsonl: Callable[..., Path]
) -> None:
    folder = tmp_path / "DIR"
    jsonl(folder / "in.jsonl")
    (folder / "beside.txt").write_text("precious")
    before = tree(folder)
    result = qudata_cli(
        "pack", "DIR/in.jsonl", "-o", "DIR", "--overwrite", *FAST_ARGS, cwd=tmp_path
    )
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert "the output folder contains an input (DIR/in.jsonl)" in line
    assert tree(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR"]  # no lock, no staging left


@pytest.mark.parametrize(
    ("inputs", "output", "what"),
    [
        (["DIR"], "DIR", "is an input"),
        (["DIR"], "DIR/out", "lies inside an input folder"),
        (["DIR/sub"], "DIR", "contains an input"),
        (["DIR/in.jsonl"], "DIR/in.jsonl", "is an input"),
        (["DIR/in.jsonl"], "DIR/in.jsonl/out", "lies under an input file"),
        (["DIR/*.jsonl"], "DIR", "contains an input"),
        (["link"], "DIR/out", "lies inside an input folder"),  # symlinks resolved
        (["*"], "DIR/out", "lies inside an input folder"),  # a glob that matches a folder
    ],
)
def test_output_overlapping_an_input_is_refused(
    tmp_path: Path,
    jsonl: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    inputs: list[str],
    output: str,
    what: str,
) -> None:
    jsonl(tmp_path / "DIR" / "in.jsonl")
    jsonl(tmp_path / "DIR" / "sub" / "more.jsonl")
    (tmp_path / "link").symlink_to(tmp_path / "DIR")
    before = tree(tmp_path / "DIR")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match=f"the output folder {what}") as info:
        qudata.pack_dataset(inputs, output, config=FAST, overwrite=True)
    assert info.value.exit_code == 2
    assert tree(tmp_path / "DIR") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR", "link"]


def test_a_glob_that_matches_the_output_folder_leaves_it_out_and_counts_stay_the_same(
    tmp_path: Path, jsonl: Callable[..., Path]
) -> None:
    """``data/*`` run twice with ``-o data/out``: the second run must not read the first's
    output, and its manifest is the first's."""
    jsonl(tmp_path / "data" / "a.jsonl", 20)
    args = ["pack", "data/*", "-o", "data/out", *FAST_ARGS]
    assert qudata_cli(*args, cwd=tmp_path).exit_code == 0
    first = tree(tmp_path / "data" / "out")
    result = qudata_cli(*args, "--overwrite", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert manifest(tmp_path / "data" / "out")["counts"]["read"] == 20
    assert tree(tmp_path / "data" / "out") == first


def test_other_datasets_and_hidden_entries_in_an_input_folder_are_skipped_and_counted(
    tmp_path: Path, jsonl: Callable[..., Path]
) -> None:
    data = tmp_path / "data"
    jsonl(data / "a.jsonl", 10)
    qudata.pack_dataset(data / "a.jsonl", tmp_path / "old", config=FAST)
    os.replace(tmp_path / "old", data / "old")  # a dataset inside the input folder
    jsonl(data / ".hidden.jsonl", 5)
    jsonl(data / ".cache" / "x.jsonl", 5)
    (data / "notes.csv").write_text("a,b\n")
    for name in ("one", "two"):
        report = qudata.pack_dataset(data, tmp_path / name, config=FAST)
        assert report.read == 10
    assert manifest(tmp_path / "one")["counts"]["skipped"] == {
        "hidden": 2,
        "qudata_dataset": 1,
        "unsupported_type": 1,
    }
    assert manifest(tmp_path / "one") == manifest(tmp_path / "two")


def test_a_named_dataset_folder_is_refused_as_input(
    tmp_path: Path, jsonl: Callable[..., Path]
) -> None:
    qudata.pack_dataset(jsonl(tmp_path / "a.jsonl"), tmp_path / "ds", config=FAST)
    result = qudata_cli("pack", "ds", "-o", "out", *FAST_ARGS, cwd=tmp_path)
    assert result.exit_code == 2
    assert "is a qudata dataset" in one_error_line(result.output)


# --- --overwrite replaces only a dataset or an empty folder ---


@pytest.mark.parametrize(
    "content", ["file", "folder", "foreign_manifest", "lookalike_manifest", "fifo_manifest"]
)
def test_overwrite_refuses_a_folder_that_is_not_a_dataset(
    tmp_path: Path, jsonl: Callable[..., Path], content: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if content == "file":
        (out / "thesis.tex").write_text("years of work")
    elif content == "folder":
        (out / "photos").mkdir()
    elif content == "foreign_manifest":
        (out / "manifest.json").write_text('{"name": "some other tool"}')
    elif content == "lookalike_manifest":
        (out / "manifest.json").write_text('{"notes": {"qudata_version": "1"}, "counts": {}}')
    else:
        os.mkfifo(out / "manifest.json")  # must not hang the check
    before = tree(out)
    result = qudata_cli(
        "pack", str(jsonl(tmp_path / "in.jsonl")), "-o", str(out), "--overwrite", *FAST_ARGS
    )
    assert result.exit_code == 2
    assert "replaces only a qudata dataset" in one_error_line(result.output)
    assert tree(out) == before and out.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out"]


def test_overwrite_replaces_a_dataset_and_an_empty_folder(
    tmp_path: Path, jsonl: Callable[..., Path]
) -> None:
    source = jsonl(tmp_path / "in.jsonl", 7)
    out = tmp_path / "out"
    out.mkdir()
    qudata.pack_dataset(source, out, config=FAST, overwrite=True)  # empty
    qudata.pack_dataset(source, out, config=FAST, overwrite=True)  # a dataset
    assert manifest(out)["counts"]["read"] == 7


# --- one run at a time ---


def test_a_second_run_into_the_same_output_fails_at_once_naming_the_first(
    tmp_path: Path, jsonl: Callable[..., Path]
) -> None:
    """A real second process holds the lock: the run fails at once, names its pid, and
    leaves the lock file alone (it is the other run's)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(30)\n",
            str(tmp_path / ".out.qudata.lock"),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        started = time.monotonic()
        result = qudata_cli(
            "pack", str(jsonl(tmp_path / "in.jsonl")), "-o", str(tmp_path / "out"), *FAST_ARGS
        )
        assert time.monotonic() - started < 5
        assert result.exit_code == 2
        line = one_error_line(result.output)
        assert f"another qudata run (pid {holder.pid}) is writing this output folder" in line
        assert not (tmp_path / "out").exists()
        assert (tmp_path / ".out.qudata.lock").exists()
    finally:
        holder.kill()
        holder.communicate()


def test_the_lock_file_is_removed_on_success_and_on_failure(
    tmp_path: Path, jsonl: Callable[..., Path]
) -> None:
    source = jsonl(tmp_path / "in.jsonl")
    qudata.pack_dataset(source, tmp_path / "out", config=FAST)
    assert not (tmp_path / ".out.qudata.lock").exists()
    with pytest.raises(OutputError, match="not empty"):
        qudata.pack_dataset(source, tmp_path / "out", config=FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out"]


def test_a_lock_left_by_a_dead_run_is_taken_over(
    tmp_path: Path, jsonl: Callable[..., Path]
) -> None:
    (tmp_path / ".out.qudata.lock").write_text(f"{_dead_pid()}\n")
    qudata.pack_dataset(jsonl(tmp_path / "in.jsonl"), tmp_path / "out", config=FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out"]


def test_the_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    with OutputLock(tmp_path / "out"):
        with pytest.raises(OutputError, match=f"pid {os.getpid()}"), OutputLock(tmp_path / "out"):
            pass
        fd = os.open(tmp_path / ".out.qudata.lock", os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    assert not (tmp_path / ".out.qudata.lock").exists()


def test_two_runs_started_together_one_wins_one_fails_cleanly(
    tmp_path: Path, jsonl: Callable[..., Path]
) -> None:
    source = jsonl(tmp_path / "in.jsonl", 3000)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "qudata", "pack", str(source), "-o", "out", *FAST_ARGS],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(Path(qudata.__file__).parents[1])},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outcomes = []
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        outcomes.append((proc.returncode, err.decode()))
    codes = sorted(code for code, _ in outcomes)
    # either both ran one after the other (the second then finds a dataset: exit 2,
    # "not empty"), or the second found the first running (exit 2, "another qudata run")
    assert codes == [0, 2], outcomes
    loser = next(err for code, err in outcomes if code == 2)
    assert "another qudata run" in loser or "not empty" in loser
    one_error_line(loser)
    assert manifest(tmp_path / "out")["counts"]["read"] == 3000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out"]


# --- recovery of a run killed between its final renames ---


def test_a_restored_dataset_is_not_replaced_without_overwrite(
    tmp_path: Path, jsonl: Callable[..., Path]
) -> None:
    source = jsonl(tmp_path / "in.jsonl", 5)
    out = tmp_path / "out"
    qudata.pack_dataset(source, out, config=FAST)
    complete = tree(out)
    os.replace(out, tmp_path / f".out.qudata-old-{_dead_pid()}")  # killed mid-publish
    (tmp_path / f".out.qudata-partial-{_dead_pid()}").mkdir()
    result = qudata_cli("pack", str(jsonl(tmp_path / "other.jsonl", 9)), "-o", str(out), *FAST_ARGS)
    assert result.exit_code == 2
    assert "not empty" in one_error_line(result.output)
    assert tree(out) == complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "other.jsonl", "out"]


def test_a_killed_publish_is_recovered_in_a_child_process(
    tmp_path: Path, jsonl: Callable[..., Path]
) -> None:
    """A run killed between its two renames left the only dataset under ``-old-``: the
    next run (with --overwrite) puts it back first and then replaces it by the same bytes."""
    jsonl(tmp_path / "in.jsonl", 5)
    args = ["pack", "in.jsonl", "-o", "out", *FAST_ARGS]
    assert qudata_process(*args, cwd=tmp_path).returncode == 0
    complete = tree(tmp_path / "out")
    os.replace(tmp_path / "out", tmp_path / f".out.qudata-old-{_dead_pid()}")
    done = qudata_process(*args, "--overwrite", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert tree(tmp_path / "out") == complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out"]
