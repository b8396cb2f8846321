"""The driver's progress reports: each phase's total, then the input bytes and the
records of each partition as it ends, from worker processes too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata


class Recorder:
    def __init__(self) -> None:
        self.phases: list[tuple[str, int]] = []
        self.done: dict[str, list[tuple[int, int]]] = {}

    def phase(self, label: str, total: int) -> None:
        self.phases.append((label, total))
        self.done[label] = []

    def advance(self, amount: int, records: int = 0) -> None:
        self.done[self.phases[-1][0]].append((amount, records))


@pytest.mark.parametrize("workers", [1, 2])
def test_every_partition_reports_its_bytes_and_records(tmp_path: Path, workers: int) -> None:
    source = tmp_path / "in.jsonl"
    lines = [orjson.dumps({"id": f"d{n}", "text": f"document {n} " * 20}) for n in range(400)]
    lines[7] = b"not json"
    source.write_bytes(b"\n".join(lines) + b"\n")
    config: dict[str, Any] = {
        "pack": {"formats": ["jsonl"]},
        "dedup": {"method": "exact"},
        "quality": {"tokenizer": "none"},
        "engine": {"workers": workers, "partition_size": 8192},
    }
    recorder = Recorder()
    report = qudata.pack_dataset(source, tmp_path / "out", config=config, progress=recorder)
    assert [label for label, _ in recorder.phases] == ["scan", "dedup", "write", "commit"]
    size = source.stat().st_size
    assert recorder.phases[0] == ("scan", size) and recorder.phases[2] == ("write", size)
    for label in ("scan", "write"):
        done = recorder.done[label]
        assert len(done) > 4  # one report per partition
        assert sum(amount for amount, _ in done) == size
        assert sum(records for _, records in done) == report.read == 400
    assert recorder.phases[3] == ("commit", 2)  # one format, then the rejects
    assert len(recorder.done["commit"]) == 2
