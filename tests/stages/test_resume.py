"""``--resume``: a run killed after some partitions is taken up, and the output is the
same as an uninterrupted run's; a changed input or configuration starts afresh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

import qudata

ROOT = Path(__file__).resolve().parents[2]

# In every process (the run's own, a lane too, and its workers): map 2 of partition 3
# and later never ends, so the run is killed with some partitions done and others not.
STUCK = """\
import functools, time
import qudata.stages.write as write
original = write.write_partition

@functools.wraps(original)
def write_partition(job, index):
    if index >= 3:
        time.sleep(600)
    return original(job, index)

write.write_partition = write_partition
"""

CONFIG = {
    "pack": {"formats": ["chatml", "jsonl"]},
    "quality": {"tokenizer": "none"},
    "dedup": {"method": "exact"},
    "engine": {"workers": 2, "partition_size": 8192},
}


def _input(path: Path) -> Path:
    rows = [{"id": f"d{n}", "text": f"document {n % 150} " + "word " * 40} for n in range(400)]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _killed_run(tmp_path: Path, source: Path, out: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(STUCK)
    config = tmp_path / "config.json"
    config.write_bytes(orjson.dumps(CONFIG))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(site)]))
    process = subprocess.Popen(
        [sys.executable, "-m", "qudata", "pack", str(source), "-o", str(out), "-c", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    done: list[Path] = []
    while time.monotonic() < deadline and len(done) < 3:
        done = list(tmp_path.glob(".out.qudata-partial-*/.parts/done/write-*.json"))
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(done) == 3, "the run did not get to three partitions"
    assert not out.exists()


def test_a_killed_run_resumes_to_the_same_bytes(tmp_path: Path) -> None:
    source = _input(tmp_path / "in.jsonl")
    fresh = tmp_path / "fresh"
    qudata.pack_dataset(source, fresh, config=CONFIG)
    out = tmp_path / "out"
    _killed_run(tmp_path, source, out)
    assert len(list(tmp_path.glob(".out.qudata-partial-*"))) == 1
    report = qudata.pack_dataset(source, out, config=CONFIG, resume=True)
    assert report.balanced()
    a, b = _tree(fresh), _tree(out)
    run_a = orjson.loads(a.pop("manifest.json")).pop("run")
    manifest_b = orjson.loads(b.pop("manifest.json"))
    run_b = manifest_b.pop("run")
    assert a == b
    assert run_a["resumed"] == 0
    # its three written partitions were taken up (scans whose dedup keys the global
    # step already consumed are computed again)
    assert run_b["resumed"] >= 3
    assert list(tmp_path.glob(".out.qudata-partial-*")) == []


def test_every_piece_s_scan_of_a_split_file_is_taken_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the dedup step (which consumes the scans' key files), every scan of the
    pieces of a split local file is taken up: the digest its record gives the piece's
    bytes is the one ``--resume`` computes of them now (the first piece's whole-file
    read, and each later piece's range)."""
    monkeypatch.setitem(CONFIG, "dedup", {"method": "none"})
    source = _input(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    _killed_run(tmp_path, source, out)
    report = qudata.pack_dataset(source, out, config=CONFIG, resume=True)
    resumed = report.resumed
    assert resumed is not None and resumed["partitions"] > 3
    assert resumed["scan"] == resumed["partitions"] and resumed["write"] >= 3


def test_a_killed_run_of_another_parts_layout_is_not_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed by another version, whose parts are laid out otherwise (``-f packed``
    held JSON before its int32 entries), starts afresh instead of misreading them."""
    from qudata.stages import resume

    source = _input(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    _killed_run(tmp_path, source, out)
    monkeypatch.setattr(resume, "PARTS_LAYOUT", resume.PARTS_LAYOUT + 1)
    report = qudata.pack_dataset(source, out, config=CONFIG, resume=True)
    assert orjson.loads((out / "manifest.json").read_bytes())["run"]["resumed"] == 0
    assert report.balanced()


def test_a_changed_input_is_not_resumed(tmp_path: Path) -> None:
    source = _input(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    _killed_run(tmp_path, source, out)
    rows = source.read_bytes().replace(b"document 1 ", b"document X ")
    source.write_bytes(rows)
    report = qudata.pack_dataset(source, out, config=CONFIG, resume=True)
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["run"]["resumed"] == 0
    fresh = tmp_path / "fresh"
    qudata.pack_dataset(source, fresh, config=CONFIG)
    assert _tree(out / "jsonl") == _tree(fresh / "jsonl")
    assert report.balanced()


def test_without_resume_a_stale_staging_folder_is_removed(tmp_path: Path) -> None:
    source = _input(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    _killed_run(tmp_path, source, out)
    qudata.pack_dataset(source, out, config=CONFIG)
    assert orjson.loads((out / "manifest.json").read_bytes())["run"]["resumed"] == 0
    assert list(tmp_path.glob(".out.qudata-partial-*")) == []
