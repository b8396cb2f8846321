"""The publish gate's cost: the seconds :func:`qudata.export.verify.verify_dataset`
takes inside one ``pack`` run, as a share of the whole run (issue 22).

    PYTHONPATH=src python bench/publish_gate.py /tmp/c200.jsonl -f chatml -f jsonl

Prints one line per run: formats, the run's seconds, the gate's seconds and their ratio,
and the bytes the gate read (every file the manifest lists, and rejects.jsonl).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import qudata
import qudata.export.publish as publish


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus")
    parser.add_argument("-f", "--format", action="append", dest="formats")
    parser.add_argument("--config", default=None, help="a JSON configuration")
    args = parser.parse_args()
    spent: list[float] = []
    original = publish.verify_dataset

    def timed(fs: Any, root: str, manifest: dict[str, Any]) -> None:
        start = time.perf_counter()
        original(fs, root, manifest)
        spent.append(time.perf_counter() - start)

    publish.verify_dataset = timed  # type: ignore[assignment]
    work = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    try:
        start = time.perf_counter()
        report = qudata.pack_dataset(
            args.corpus, work / "out", formats=args.formats, config=args.config
        )
        total = time.perf_counter() - start
        read = sum(p.stat().st_size for p in (work / "out").rglob("*") if p.is_file())
        names = ",".join(report.formats)
        print(
            f"{names}: run {total:.2f} s, gate {spent[0]:.2f} s "
            f"({100 * spent[0] / total:.1f}% of the run), output {read / 1e6:.0f} MB"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
