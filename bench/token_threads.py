"""Threads of a batch token count: 1, 2 and qudata's automatic choice, on the batches a
run makes (512 short chat records; about 1M characters of long documents).

The automatic choice (``quality.token_threads`` unset) is one thread per 256 KiB of text
in the batch, at most the CPUs the load average leaves free. Medians of interleaved
rounds; the load average is printed, since a busy machine changes the answer.

    PYTHONPATH=src python bench/token_threads.py CORPUS.jsonl [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import orjson

from qudata.quality.tokens import TiktokenCounter, batch_threads, load_tiktoken_encoding


def batches(path: str) -> dict[str, list[list[str]]]:
    texts = []
    with open(path, "rb") as f:
        for line in f:
            text = orjson.loads(line).get("text") or ""
            if text:
                texts.append(text)
    short = [t[:200] for t in texts] * 3  # chat turns: ~200 characters each
    long_batches, batch, size = [], [], 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= 1_000_000 or len(batch) >= 512:
            long_batches.append(batch)
            batch, size = [], 0
    short_batches = [short[i : i + 512] for i in range(0, len(short), 512)]
    return {"short records": short_batches, "long documents": long_batches}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    encoding = load_tiktoken_encoding("cl100k_base")
    work = batches(args.corpus)
    choices: dict[str, TiktokenCounter] = {
        "1 thread": TiktokenCounter(encoding, num_threads=1),
        "2 threads": TiktokenCounter(encoding, num_threads=2),
        "automatic": TiktokenCounter(encoding),
    }
    print(f"load average before: {os.getloadavg()[0]:.2f}; CPUs: {os.cpu_count()}")
    for kind, groups in work.items():
        chars = sum(len(t) for g in groups for t in g)
        picked = statistics.mode(batch_threads(g) for g in groups)
        times: dict[str, list[float]] = {name: [] for name in choices}
        for r in range(args.rounds):
            order = list(choices.items())
            if r % 2:
                order.reverse()
            for name, counter in order:
                t0 = time.perf_counter()
                for group in groups:
                    counter.count_batch(group)
                times[name].append(time.perf_counter() - t0)
        cells = ", ".join(f"{n} {statistics.median(t):.2f} s" for n, t in times.items())
        print(f"{kind} ({len(groups)} batches, {chars / 1e6:.0f}M chars, automatic picks "
              f"{picked}): {cells}")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
