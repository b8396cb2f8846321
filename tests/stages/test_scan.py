"""Map 1 (:func:`qudata.stages.scan.scan_partition`): a partition stopped midway (Ctrl-C,
a full disk) leaves no file of its dedup keys open."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from qudata.config import load_config
from qudata.io.sources import expand_inputs
from qudata.plan.job import Job
from qudata.plan.partitions import plan_partitions
from qudata.stages.context import forget
from qudata.stages.scan import scan_partition


def _open_files_under(folder: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("method", ["exact", "near"])
def test_a_failing_partition_closes_its_key_files(
    tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [orjson.dumps({"id": f"d{n}", "text": f"document number {n} " * 5}) for n in range(900)]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(rows) + b"\n")
    cfg = load_config(
        {
            "quality": {"tokenizer": "none"},
            "input": {"on_error": "fail"},
            "dedup": {"method": method},
        }
    )
    staging = tmp_path / "staging"
    job = Job(cfg, staging, plan_partitions(expand_inputs([source]), None))
    seen = []

    def stop_at_700(doc: object, ctx: object) -> None:
        seen.append(doc)
        if len(seen) == 700:  # after a first batch of keys was written
            raise KeyboardInterrupt

    monkeypatch.setattr("qudata.stages.scan.passes_checks", stop_at_700)
    try:
        with pytest.raises(KeyboardInterrupt):
            scan_partition(job, 0)
        assert list((staging / ".parts" / "dedup").glob("*.pos"))  # it had opened them
        assert _open_files_under(staging) == []
    finally:
        forget()
