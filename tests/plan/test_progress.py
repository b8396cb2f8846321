"""The driver's progress reports: each phase's total and unit, then the work done as each
call ends, from worker processes too; and the terminal bar that shows them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

import qudata
from qudata.io.sources import Source
from qudata.plan.partitions import plan_partitions
from qudata.progress import TerminalProgress, done_text, speed_text


class Recorder:
    def __init__(self) -> None:
        self.phases: list[tuple[str, int, str]] = []
        self.done: dict[str, list[tuple[int, int]]] = {}

    def phase(self, label: str, total: int, unit: str = "bytes") -> None:
        self.phases.append((label, total, unit))
        self.done[label] = []

    def advance(self, amount: int, records: int = 0) -> None:
        self.done[self.phases[-1][0]].append((amount, records))


def _source(tmp_path: Path, n: int = 400) -> Path:
    source = tmp_path / "in.jsonl"
    lines = [orjson.dumps({"id": f"d{k}", "text": f"document {k % 300} " * 20}) for k in range(n)]
    lines[7] = b"not json"
    source.write_bytes(b"\n".join(lines) + b"\n")
    return source


def _config(workers: int, method: str = "exact") -> dict[str, Any]:
    return {
        "pack": {"formats": ["jsonl"]},
        "dedup": {"method": method},
        "quality": {"tokenizer": "none"},
        "engine": {"workers": workers, "partition_size": 8192},
    }


@pytest.mark.parametrize("workers", [1, 2])
def test_every_phase_has_a_total_that_its_advances_reach(tmp_path: Path, workers: int) -> None:
    source = _source(tmp_path)
    recorder = Recorder()
    out = tmp_path / "out"
    report = qudata.pack_dataset(source, out, config=_config(workers), progress=recorder)
    assert [label for label, _, _ in recorder.phases] == ["scan", "dedup", "write", "commit"]
    size = source.stat().st_size
    assert recorder.phases[0] == ("scan", size, "bytes")
    assert recorder.phases[2] == ("write", size, "bytes")
    for label in ("scan", "write"):
        done = recorder.done[label]
        assert len(done) > 4  # one report per partition
        assert sum(amount for amount, _ in done) == size
        assert sum(records for _, records in done) == report.read == 400
    partitions = len(recorder.done["scan"])
    label, tasks, unit = recorder.phases[1]
    # exact: one task per key range, then per partition the verdicts and the cluster sizes
    assert unit == "tasks" and tasks > 2 * partitions
    assert [amount for amount, _ in recorder.done["dedup"]] == [1] * tasks
    # commit: the bytes of the parts made into shards, one report per format and rejects
    label, total, unit = recorder.phases[3]
    assert unit == "bytes" and len(recorder.done["commit"]) == 2
    assert sum(amount for amount, _ in recorder.done["commit"]) == total
    shards = sum(p.stat().st_size for p in (out / "jsonl").rglob("*.jsonl"))
    assert total > (out / "rejects.jsonl").stat().st_size + shards // 2  # bytes, not items


def test_near_dedup_counts_its_pair_tasks(tmp_path: Path) -> None:
    recorder = Recorder()
    config = _config(1, "near")
    qudata.pack_dataset(_source(tmp_path), tmp_path / "out", config=config, progress=recorder)
    partitions = len(recorder.done["scan"])
    label, tasks, unit = recorder.phases[1]
    assert (label, unit) == ("dedup", "tasks")
    # exact ranges, the exact bits, band ranges, the first-kept rule, 2 per partition
    assert tasks >= 1 + 1 + 1 + 1 + 2 * partitions
    assert len(recorder.done["dedup"]) == tasks


def test_a_uri_input_has_its_size_from_the_file_system(tmp_path: Path) -> None:
    """URIs (read by the Ray engine, through fsspec) count in the bar by their size."""
    source = _source(tmp_path)
    uri = source.as_uri()
    (partition,) = plan_partitions([Source(uri, "jsonl", uri)], 0)
    assert partition.size == source.stat().st_size > 0
    (missing,) = plan_partitions([Source(uri + ".gone", "jsonl", "gone")], 0)
    assert missing.size == 0  # the reader reports it


def test_the_bar_shows_each_phase_in_its_own_unit() -> None:
    console = Console(width=160, force_terminal=True, file=io.StringIO())
    with TerminalProgress(False, console=console) as progress:
        assert progress is not None
        progress.phase("scan", 58_800_000)
        progress.advance(12_300_000, records=10)
        assert "12.3 MB/58.8 MB" in progress.snapshot()
        progress.phase("dedup", 120, "tasks")
        progress.advance(1)
        progress.advance(36)
        line = progress.snapshot()
        assert "37/120 tasks" in line and "bytes" not in line and "?" not in line
    assert done_text(2, 3, "bytes") == "2 bytes/3 bytes"
    assert done_text(5, None, "tasks") == "5/? tasks"
    assert speed_text(4_100_000, "bytes") == "4.1 MB/s" and speed_text(None, "tasks") == ""
    assert speed_text(12.5, "tasks") == "12.5 tasks/s"
