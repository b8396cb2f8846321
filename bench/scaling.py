"""Scaling of the partitioned plan: workers, phases, and the Ray driver's share of the work.

    python bench/scaling.py [--corpus bench/.work/corpus/corpus-200.jsonl] [--rounds 3]
                            [--workers 1,2,4,8] [--ray]

The job is ``bench/run.py``'s ``pack`` job (ChatML, quality >= 0.7, no dedup,
``--tokenizer none``). For each worker count, in interleaved rounds, one child process
runs it with a progress hook that times each phase (scan = map 1, write = map 2,
commit); the table gives the median wall time, the phases, and the throughput per
worker. ``--ray`` adds the Ray engine on a local instance started beforehand: the
driver's own CPU time (its process, every thread, no children) against the local
engine's total CPU time (parent and worker processes) for the same job.

Run it with the qudata venv's Python (``bench/.work/venv-qudata/bin/python``).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CONFIG = {
    "pack": {"formats": ["chatml"]},
    "quality": {"tokenizer": "none", "min_quality_score": 0.7},
    "dedup": {"method": "none"},
    "output": {"overwrite": True},
}

CHILD = """
import json, resource, sys, time
import qudata

class Phases:
    def __init__(self):
        self.label, self.start, self.times = None, time.perf_counter(), {}
    def phase(self, label, total):
        now = time.perf_counter()
        if self.label:
            self.times[self.label] = self.times.get(self.label, 0) + now - self.start
        self.label, self.start = label, now
    def advance(self, amount, records=0):
        pass

config, source, out, engine = json.loads(sys.argv[1])
phases = Phases()
import qudata.pipeline, qudata.driver, qudata.stages.write  # imports: not the job
if engine == "ray":
    import ray
    import qudata.engines.ray
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
before = resource.getrusage(resource.RUSAGE_SELF)
start = time.perf_counter()
qudata.pack_dataset([source], out, config=config, progress=phases)
wall = time.perf_counter() - start
phases.phase(None, 0)
after = resource.getrusage(resource.RUSAGE_SELF)
own = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"wall": wall, "phases": phases.times, "own_cpu": own}))
"""


def run(config: dict, source: str, out: str, engine: str = "local") -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([config, source, out, engine])],
        capture_output=True,
        text=True,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    data: dict = json.loads(result.stdout.strip().splitlines()[-1])
    data["total_cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(BENCH / ".work" / "corpus" / "corpus-200.jsonl"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--ray", action="store_true")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    size = Path(args.corpus).stat().st_size / 1e6
    out = Path(tempfile.mkdtemp(prefix="qudata-scaling-"))
    results: dict[str, list[dict]] = {}
    try:
        for round_ in range(args.rounds):
            order = counts if round_ % 2 == 0 else counts[::-1]
            for workers in order:
                config = {**CONFIG, "engine": {"workers": workers}}
                results.setdefault(f"local-{workers}", []).append(
                    run(config, args.corpus, str(out / f"w{workers}"))
                )
            if args.ray:
                config = {**CONFIG, "engine": {"name": "ray"}}
                results.setdefault("ray", []).append(
                    run(config, args.corpus, str(out / "ray"), "ray")
                )
    finally:
        shutil.rmtree(out, ignore_errors=True)

    def median(key: str, field: str) -> float:
        return statistics.median(r[field] for r in results[key])

    def phase(key: str, name: str) -> float:
        return statistics.median(r["phases"].get(name, 0.0) for r in results[key])

    base = median(f"local-{counts[0]}", "wall")
    print(f"{size:.0f} MB, {args.rounds} rounds, medians")
    print(
        "| workers | wall s | vs first | MB/s | MB/s per worker | scan s | write s "
        "| commit s | CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for workers in counts:
        key = f"local-{workers}"
        wall = median(key, "wall")
        print(
            f"| {workers} | {wall:.2f} | {wall / base:.2f}x | {size / wall:.1f} | "
            f"{size / wall / workers:.1f} | {phase(key, 'scan'):.2f} | {phase(key, 'write'):.2f} "
            f"| {phase(key, 'commit'):.2f} | {median(key, 'total_cpu'):.1f} |"
        )
    if args.ray:
        local = 2 if 2 in counts else counts[0]
        total = median(f"local-{local}", "total_cpu")
        driver = median("ray", "own_cpu")
        print(
            f"\nray: wall {median('ray', 'wall'):.2f} s; driver CPU {driver:.2f} s = "
            f"{100 * driver / total:.1f}% of the local engine's {total:.1f} CPU s "
            f"({local} workers); target <= 15%"
        )


if __name__ == "__main__":
    main()
