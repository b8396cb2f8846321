"""The commit never skips: a part a partition recorded that is missing or changed at
the commit fails the run naming the part and the partition, and nothing is published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
import qudata.driver as execute
from qudata.errors import IntegrityError

CONFIG = {
    "pack": {"formats": ["chatml", "jsonl"]},
    "quality": {"tokenizer": "none"},
    "engine": {"workers": 1, "partition_size": 8192},
}


def _input(path: Path) -> Path:
    rows = [{"id": f"d{n}", "text": f"document {n} " + "word " * 40} for n in range(400)]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _tamper(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, change: Any) -> None:
    """Once partition 1's account reaches the driver, ``change`` its jsonl part."""
    original = execute.add_account
    seen = [0]

    def add_account(report: Any, total: Any, part: Any) -> None:
        original(report, total, part)
        seen[0] += 1
        if seen[0] == 2:
            (path,) = tmp_path.glob(".out.qudata-partial-*/.parts/jsonl/000001.part")
            change(path)

    monkeypatch.setattr(execute, "add_account", add_account)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda path: path.unlink(), "is missing at the commit"),
        (lambda path: path.write_bytes(path.read_bytes()[:-10]), "its digest differs"),
    ],
)
def test_a_missing_or_changed_part_fails_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any, says: str
) -> None:
    source = _input(tmp_path / "in.jsonl")
    _tamper(monkeypatch, tmp_path, change)
    out = tmp_path / "out"
    with pytest.raises(IntegrityError) as caught:
        qudata.pack_dataset(source, out, config=CONFIG)
    message = str(caught.value)
    assert "the jsonl part of partition 1" in message and says in message
    assert "nothing was published" in message
    assert not out.exists()
    assert list(tmp_path.glob(".out.qudata-*")) == []


def test_the_cli_says_it_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    source = _input(tmp_path / "in.jsonl")
    hook = tmp_path / "site"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import glob, os\n"
        "import qudata.driver as e\n"
        "original = e.add_account\n"
        "def add_account(report, total, part):\n"
        "    original(report, total, part)\n"
        "    pattern = '/.out.qudata-partial-*/.parts/chatml/000002.part'\n"
        "    for path in glob.glob(os.environ['PARTS'] + pattern):\n"
        "        os.unlink(path)\n"
        "e.add_account = add_account\n"
    )
    config = tmp_path / "c.json"
    config.write_bytes(orjson.dumps(CONFIG))
    root = Path(__file__).resolve().parents[2]
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{root / 'src'}:{hook}",
        "PARTS": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "qudata", "pack", str(source), "-o", str(tmp_path / "out"),
         "-c", str(config)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: the chatml part of partition 2")
    assert not (tmp_path / "out").exists()
