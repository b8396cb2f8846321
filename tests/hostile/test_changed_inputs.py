"""Inputs are known by their bytes: a file that changes between the scan and the write
fails the run naming it (nothing published), and ``--resume`` notices an edit that
keeps the size and the modification time."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
import qudata.driver as execute
from qudata.errors import IntegrityError
from qudata.io.sources import Source
from qudata.plan.partitions import plan_partitions
from qudata.stages.content import check_pieces
from qudata.stages.scan import Scan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages"))
from test_resume import CONFIG, _input, _killed_run, _tree

FAST = {"quality": {"tokenizer": "none"}, "engine": {"workers": 1}}


def _rows(path: Path, count: int = 3000) -> Path:
    rows = [{"id": f"d{n}", "text": f"document {n} " + "word " * 30} for n in range(count)]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _after_scans(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    original = execute._after_scans

    def after(job: Any, scans: Any) -> None:
        original(job, scans)
        change()

    monkeypatch.setattr(execute, "_after_scans", after)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _replace(path: Path) -> None:
    data = path.read_bytes()
    temp = path.with_suffix(".new")
    temp.write_bytes(data.replace(b"document 7 ", b"document Z "))
    os.replace(temp, path)


@pytest.mark.parametrize("size", ["64MB", 16384])
@pytest.mark.parametrize("change", [_truncate, _replace])
def test_a_file_changed_between_the_passes_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, change: Any
) -> None:
    source = _rows(tmp_path / "in.jsonl")
    _after_scans(monkeypatch, lambda: change(source))
    out = tmp_path / "out"
    config = {**FAST, "engine": {"workers": 1, "partition_size": size}}
    with pytest.raises(IntegrityError) as caught:
        qudata.pack_dataset(source, out, config=config)
    message = str(caught.value)
    assert message.endswith("in.jsonl: changed while the run read it; nothing was published")
    assert not out.exists()
    assert list(tmp_path.glob(".out.qudata-*")) == []


def test_the_manifest_gives_the_sha256_of_the_bytes_read(tmp_path: Path) -> None:
    import hashlib

    source = _rows(tmp_path / "in.jsonl")
    for size in ("64MB", 16384):
        out = tmp_path / f"out{size}"
        config = {**FAST, "engine": {"workers": 1, "partition_size": size}}
        qudata.pack_dataset(source, out, config=config)
        manifest = orjson.loads((out / "manifest.json").read_bytes())
        assert manifest["inputs"][0]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()


def test_pieces_that_read_other_bytes_are_refused(tmp_path: Path) -> None:
    source = _rows(tmp_path / "in.jsonl")
    partitions = plan_partitions([Source(str(source), "jsonl", "in.jsonl")], 16384)
    assert len(partitions) > 2
    first = Scan(sha256="w", pieces=[f"p{n}" for n in range(len(partitions))])
    first.size = partitions[-1].span[1]  # type: ignore[index]
    first.content = ["p0"]
    scans = [first] + [Scan(content=[f"p{n}"]) for n in range(1, len(partitions))]
    check_pieces(partitions, scans)
    scans[2].content = ["other"]
    with pytest.raises(IntegrityError, match=r"in\.jsonl: changed while the run read it"):
        check_pieces(partitions, scans)
    scans[2].content = ["p2"]
    first.size += 10  # the file grew after it was cut
    with pytest.raises(IntegrityError):
        check_pieces(partitions, scans)


def test_resume_notices_an_edit_that_keeps_size_and_mtime(tmp_path: Path) -> None:
    source = _input(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    _killed_run(tmp_path, source, out)
    before = os.stat(source)
    data = source.read_bytes()
    edited = data.replace(b"document 1 ", b"document X ")
    assert len(edited) == len(data) and edited != data
    source.write_bytes(edited)
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))  # as touch -r, cp -p
    assert os.stat(source).st_size == before.st_size
    report = qudata.pack_dataset(source, out, config=CONFIG, resume=True)
    assert report.balanced()
    assert any("recomputed: its input changed" in note for note in report.notes)
    fresh = tmp_path / "fresh"
    qudata.pack_dataset(source, fresh, config=CONFIG)
    a, b = _tree(fresh), _tree(out)
    orjson.loads(a.pop("manifest.json")).pop("run")
    assert orjson.loads(b.pop("manifest.json")).pop("run")["resumed"] == 0
    assert a == b
