"""The output folder's safety module: what counts as ours, recovery and publishing.

The end-to-end cases (the CLI, two processes, a killed publish) are in tests/hostile/.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from qudata.errors import OutputError
from qudata.io.output_dir import (
    check_not_an_input,
    check_output_dir,
    is_own_path,
    is_qudata_dataset,
    publish,
    recover,
)


def dataset(path: Path, marker: str = "x") -> Path:
    path.mkdir(parents=True)
    manifest = {"qudata_version": "0.1.0", "counts": {"read": 0}, "marker": marker}
    (path / "manifest.json").write_bytes(orjson.dumps(manifest))
    return path


def test_is_qudata_dataset(tmp_path: Path) -> None:
    assert is_qudata_dataset(dataset(tmp_path / "ours"))
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "manifest.json").write_text('{"qudata_version": 3}')
    assert not is_qudata_dataset(tmp_path / "theirs")  # not text, and no counts
    (tmp_path / "empty").mkdir()
    assert not is_qudata_dataset(tmp_path / "empty")
    assert not is_qudata_dataset(tmp_path / "missing")


def test_is_own_path(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert is_own_path(out, out)
    assert is_own_path(tmp_path / ".out.qudata-partial-12", out)
    assert is_own_path(tmp_path / ".out.qudata.lock", out)
    assert not is_own_path(tmp_path / ".outer.qudata-partial-12", out)
    assert not is_own_path(tmp_path / "out2", out)
    (tmp_path / "link").symlink_to(out, target_is_directory=True)
    assert is_own_path(tmp_path / "link", out)


def test_check_not_an_input_ignores_stdin_uris_and_neighbours(tmp_path: Path) -> None:
    check_not_an_input(tmp_path / "out", ["-", "s3://bucket/x.jsonl", str(tmp_path / "in")], [])
    with pytest.raises(OutputError, match="contains an input"):
        check_not_an_input(tmp_path, [], [str(tmp_path / "in" / "a.jsonl")])


def test_check_output_dir(tmp_path: Path) -> None:
    check_output_dir(tmp_path / "new", overwrite=False)
    check_output_dir(dataset(tmp_path / "ds"), overwrite=True)
    with pytest.raises(OutputError, match="not empty"):
        check_output_dir(tmp_path / "ds", overwrite=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        check_output_dir(tmp_path / "file", overwrite=True)


def test_recover_puts_one_old_dataset_back_and_removes_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    dataset(tmp_path / ".out.qudata-old-100", "first")
    dataset(tmp_path / ".out.qudata-old-200", "second")
    (tmp_path / ".out.qudata-partial-300").mkdir()
    (tmp_path / ".other.qudata-partial-400").mkdir()  # another output's: not touched
    recover(out)
    assert orjson.loads((out / "manifest.json").read_bytes())["marker"] == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.qudata-partial-400", "out"]


def test_recover_keeps_an_existing_output(tmp_path: Path) -> None:
    out = dataset(tmp_path / "out", "current")
    dataset(tmp_path / ".out.qudata-old-100", "older")
    recover(out)
    assert orjson.loads((out / "manifest.json").read_bytes())["marker"] == "current"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_publish_replaces_and_restores_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = dataset(tmp_path / "out", "old")
    staging = dataset(tmp_path / ".out.qudata-partial-1", "new")
    real = os.replace

    def failing(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == staging:
            raise OSError("disk on fire")
        real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk on fire"):
        publish(staging, out)
    monkeypatch.undo()
    assert orjson.loads((out / "manifest.json").read_bytes())["marker"] == "old"
    publish(staging, out)
    assert orjson.loads((out / "manifest.json").read_bytes())["marker"] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
