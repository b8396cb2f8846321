"""SIGINT or SIGTERM at any moment of a run (scan, dedup, write, commit, gate, publish,
after the rename): exit 130 or 143 with the one ``Interrupted:`` line and no traceback,
and either nothing published or the complete, verified dataset in place."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from qudata.export.verify import LocalFileSystem, manifest_of, verify_dataset
from qudata.pause import POINTS

SRC = Path(__file__).resolve().parents[2] / "src"
CONFIG = {
    "quality": {"tokenizer": "none"},
    "dedup": {"method": "exact"},
    "pack": {"formats": ["chatml", "jsonl"]},
    "engine": {"workers": 2, "partition_size": 8192},
}


def _input(path: Path) -> Path:
    rows = [{"id": f"d{n}", "text": f"document {n % 300} " + "word " * 30} for n in range(600)]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("signum", "group"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["INT", "TERM", "Ctrl-C"],
)
@pytest.mark.parametrize("point", POINTS)
def test_a_signal_at_each_point(tmp_path: Path, point: str, signum: int, group: bool) -> None:
    """``group``: to every process of the run, as Ctrl-C in a terminal sends it."""
    source = _input(tmp_path / "in.jsonl")
    config = tmp_path / "config.json"
    config.write_bytes(orjson.dumps(CONFIG))
    marker = tmp_path / "paused"
    out = tmp_path / "out"
    env = dict(
        os.environ,
        PYTHONPATH=str(SRC),
        QUDATA_PAUSE_AT=point,
        QUDATA_PAUSE_FILE=str(marker),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "qudata", "pack", str(source), "-o", str(out),
         "-c", str(config), "-q"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 25
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert marker.exists(), f"the run never reached {point}"
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Interrupted: "), stderr
    if point == "published":
        assert lines[0] == f"Interrupted: the complete, verified dataset was published to {out}"
        fs = LocalFileSystem()
        verify_dataset(fs, str(out), manifest_of(fs, str(out)))
    else:
        assert lines[0] == "Interrupted: nothing was published"
        assert not out.exists()
    time.sleep(0.2)  # workers end with the run
    assert list(tmp_path.glob(".out.qudata*")) == []  # no staging, lock or old folder left
