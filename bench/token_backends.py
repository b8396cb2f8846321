"""Encoders of cl100k_base (or o200k_base): tiktoken against quicktok (``qudata[fast]``),
through qudata's counter, on the texts of a corpus, in batches as a run makes them.

Per round and backend (interleaved, the order flipping each round): ``count_batch`` and
``encode_batch`` of every batch, with 1 and 2 threads. The ids of both backends are
compared on every text (a mismatch is reported and fails). Also the load of each backend
in a fresh process (what every worker pays once). Medians; the load average is printed.

    PYTHONPATH=src python bench/token_backends.py CORPUS.jsonl [--rounds 3] [--encoding NAME]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import orjson

from qudata.quality.tokens import TiktokenCounter
from qudata.quality.tokens.encodings import load_encoding, load_tiktoken_encoding

LOAD = (
    "import time; t = time.process_time();"
    "from qudata.quality.tokens import get_token_counter;"
    "c = get_token_counter({name!r}); c.count('x'); c.token_ends('x');"
    "print(c.backend, time.process_time() - t)"
)


def batches(path: str) -> list[list[str]]:
    """The corpus's texts in batches of up to 512 texts or about 1M characters."""
    out, batch, size = [], [], 0
    with open(path, "rb") as f:
        for line in f:
            text = orjson.loads(line).get("text") or ""
            batch.append(text)
            size += len(text)
            if size >= 1_000_000 or len(batch) >= 512:
                out.append(batch)
                batch, size = [], 0
    return [*out, batch] if batch else out


def load_seconds(name: str, fast: bool) -> float:
    env = {**os.environ, "QUDATA_FAST_TOKENIZER": "1" if fast else "0"}
    code = LOAD.format(name=name)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--encoding", default="cl100k_base")
    args = ap.parse_args()
    quick = load_encoding(args.encoding)
    slow = load_tiktoken_encoding(args.encoding)
    work = batches(args.corpus)
    chars = sum(len(t) for b in work for t in b)
    print(f"load average before: {os.getloadavg()[0]:.2f}; CPUs: {os.cpu_count()}")
    print(f"{len(work)} batches, {chars:,} characters, encoding {args.encoding}")
    mismatches = 0
    reference = TiktokenCounter(slow, num_threads=1)
    candidate = TiktokenCounter(quick, num_threads=1)
    if candidate.backend != "quicktok":
        sys.exit("quicktok is not installed or not proven: pip install 'qudata[fast]'")
    tokens = 0
    for batch in work:
        expected = [reference.ids(t) for t in reference.encode_batch(batch)]
        got = [candidate.ids(t) for t in candidate.encode_batch(batch)]
        mismatches += sum(a != b for a, b in zip(expected, got, strict=True))
        tokens += sum(map(len, expected))
    print(f"ids compared on every text: {tokens:,} tokens, {mismatches} texts differ")
    cases = {
        f"{backend} {op} {threads}t": (
            TiktokenCounter(slow if backend == "tiktoken" else quick, num_threads=threads),
            op,
        )
        for op in ("count_batch", "encode_batch")
        for threads in (1, 2)
        for backend in ("tiktoken", "quicktok")
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(args.rounds):
        order = list(cases.items())
        for name, (counter, op) in order if r % 2 == 0 else order[::-1]:
            call = getattr(counter, op)
            start, start_cpu = time.perf_counter(), time.process_time()
            for batch in work:
                call(batch)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    print(f"  {'':<28} {'wall':>7}     {'ratio':>5}        {'CPU':>7}     {'ratio':>5}")
    for name in cases:
        base = name.replace("quicktok", "tiktoken")
        wall, cpu_s = statistics.median(times[name]), statistics.median(cpu[name])
        wall_ratio = wall / statistics.median(times[base])
        cpu_ratio = cpu_s / statistics.median(cpu[base])
        print(
            f"  {name:<28} {wall:7.2f} s {wall_ratio:5.2f}x tiktoken"
            f" {cpu_s:7.2f} s {cpu_ratio:5.2f}x tiktoken"
        )
    for fast in (False, True):
        loads = [load_seconds(args.encoding, fast) for _ in range(args.rounds)]
        label = "quicktok" if fast else "tiktoken"
        print(f"  load in a fresh process, {label:<9} {statistics.median(loads):7.2f} CPU-s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if mismatches:
        sys.exit(1)


if __name__ == "__main__":
    main()
