"""Near dedup at scale: the on-disk global step (``qudata.dedup.step``) against rensa.

A synthetic corpus of N documents of about 0.7 KB (110 words of a 50,000-word
vocabulary) is written to ``bench/.work/scale/`` with planted copies of earlier
documents: 2% exact, 5% near (about 1% of the words edited, as
``/work/shared/corpus/make_corpus.py`` does), listed with their true word 5-gram
Jaccard. Each side runs in its own process, one core, on the same JSONL file:

* ``qudata``: JSONL read in batches, partitions of ``--partition`` documents, each
  through a ``KeyWriter`` (map 1), then ``resolve`` and ``read_verdicts``;
* ``rensa``: ``bench/ref_near_dedup.py`` (rensa's MinHash + LSH, minimal).

Reported per side: wall time (median of ``--rounds`` interleaved rounds), peak RSS
of the process (``ru_maxrss`` of the child), and for qudata the recall of planted
copies, the wrong removals (documents removed that are no planted copy), spill bytes.

    python bench/dedup_scale.py --docs 250000 --docs 1000000 --rounds 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "scale"
sys.path.insert(0, str(HERE.parent / "src"))


def shingle_set(words: list[str]) -> set[str]:
    return {" ".join(words[i : i + 5]) for i in range(max(1, len(words) - 4))}


def edit(words: list[str], rnd: random.Random) -> list[str]:
    """About 1% of the words replaced, deleted or inserted (make_corpus.py's edits)."""
    words = list(words)
    for _ in range(max(1, round(0.01 * len(words)))):
        i, op = rnd.randrange(len(words)), rnd.random()
        if op < 0.4:
            words[i] = words[i][::-1] + "x"
        elif op < 0.7:
            del words[i]
        else:
            words.insert(i, rnd.choice(["the", "a", "also", "new", "data", "note"]))
    return words


def build(n: int, seed: int = 0) -> Path:
    """The corpus of ``n`` documents and its ``.planted.jsonl`` listing (cached)."""
    out = WORK / f"scale-{n}.jsonl"
    listing = Path(f"{out}.planted.jsonl")
    if listing.exists():
        return out
    WORK.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rnd.choices(alphabet, k=rnd.randint(2, 9))) for _ in range(50_000)]
    cumulative = list(itertools.accumulate(1 / (r + 10) for r in range(len(vocab))))  # Zipf-like
    recent: list[tuple[str, list[str]]] = []
    with open(out, "w", encoding="utf-8") as docs, open(listing, "w", encoding="utf-8") as lst:
        for i in range(n):
            doc_id, roll = f"doc-{i:09d}", rnd.random()
            if recent and roll < 0.07:
                source, words = recent[rnd.randrange(len(recent))]
                kind = "exact" if roll < 0.02 else "near"
                copy = words if kind == "exact" else edit(words, rnd)
                a, b = shingle_set(words), shingle_set(copy)
                row = {
                    "id": doc_id,
                    "of": source,
                    "kind": kind,
                    "jaccard5": len(a & b) / len(a | b),
                }
                lst.write(json.dumps(row) + "\n")
                words = copy
            else:
                words = rnd.choices(vocab, cum_weights=cumulative, k=110)
                recent.append((doc_id, words))
                if len(recent) > 20_000:
                    recent.pop(rnd.randrange(len(recent)))
            docs.write(json.dumps({"id": doc_id, "text": " ".join(words)}) + "\n")
    return out


def run_qudata(corpus: Path, removed_out: Path, partition: int, memory: str) -> dict[str, object]:
    """One side in this process: map 1 per partition, resolve, map 2's reads."""
    import orjson

    from qudata.config import DedupConfig
    from qudata.dedup.step import KeyWriter, read_verdicts, resolve

    config = DedupConfig(method="near", memory=memory)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        directory, partitions = Path(tmp), 0
        with open(corpus, "rb") as lines:
            writer, count, batch = None, 0, []
            for line in lines:
                if writer is None:
                    writer = KeyWriter(directory, partitions, config)
                row = orjson.loads(line)
                batch.append((count, row["id"], row["text"]))
                count += 1
                if len(batch) == 512 or count == partition:
                    writer.add_batch(batch)
                    batch = []
                if count == partition:
                    writer.close()
                    writer, count, partitions = None, 0, partitions + 1
            if writer is not None:
                writer.add_batch(batch)
                writer.close()
                partitions += 1
        map1 = time.perf_counter() - start
        summary = resolve(directory, partitions, config)
        resolved = time.perf_counter() - start - map1
        # map 2's lookups, every position of every partition (the ids are the generator's)
        with open(removed_out, "w", encoding="utf-8") as out:
            for p in range(partitions):
                verdicts = read_verdicts(directory, p)
                for position in range(len(verdicts)):
                    verdict = verdicts[position]
                    if verdict.duplicate_of is not None:
                        doc_id = f"doc-{p * partition + position:09d}"
                        out.write(f"{doc_id}\t{verdict.duplicate_of}\n")
    return {
        "map1_s": map1,
        "resolve_s": resolved,
        "spill_bytes": summary.spill_bytes,
        "ranges": summary.ranges,
        "duplicates": summary.duplicates,
        "candidate_pairs": summary.candidate_pairs,
        "cluster_sizes": summary.cluster_sizes,
    }


def peak_of(command: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, peak RSS (MiB), CPU seconds and standard output of ``command``, run under a
    fresh ``python`` whose only child it is (so ``RUSAGE_CHILDREN`` is its own peak)."""
    wrapper = (
        "import resource,subprocess,sys,time;t=time.perf_counter();"
        "r=subprocess.run(sys.argv[1:],capture_output=True,text=True,check=True);"
        "s=time.perf_counter()-t;"
        "u=resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(s,u.ru_maxrss,u.ru_utime+u.ru_stime);print(r.stdout,end='')"
    )
    done = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    out = done.stdout
    first, _, rest = out.partition("\n")
    seconds, peak, cpu = first.split()
    return float(seconds), int(peak) / 1024, float(cpu), rest


def score(corpus: Path, removed_path: Path) -> dict[str, float]:
    with open(f"{corpus}.planted.jsonl", encoding="utf-8") as listing:
        planted = {r["id"]: r for r in map(json.loads, listing)}
    with open(removed_path, encoding="utf-8") as lines:
        removed = dict(line.rstrip("\n").split("\t") for line in lines)
    near = [r for r in planted.values() if r["kind"] == "near"]
    over = [r for r in near if r["jaccard5"] >= 0.8]
    wrong = [i for i in removed if i not in planted]
    return {
        "planted": len(planted),
        "recall_all_pct": 100 * sum(i in removed for i in planted) / max(1, len(planted)),
        "recall_near_pct": 100 * sum(r["id"] in removed for r in near) / max(1, len(near)),
        "recall_near_j08_pct": 100 * sum(r["id"] in removed for r in over) / max(1, len(over)),
        "removed": len(removed),
        "wrong_removals_pct": 100 * len(wrong) / max(1, len(removed)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, action="append", help="corpus sizes (repeat)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--partition", type=int, default=100_000, help="documents per partition")
    parser.add_argument("--memory", default="1GB", help="dedup.memory of the qudata side")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--removed", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "qudata":
        print(json.dumps(run_qudata(args.corpus, args.removed, args.partition, args.memory)))
        return
    for n in args.docs or [250_000]:
        corpus = build(n)
        size = os.path.getsize(corpus)
        print(f"\ncorpus {corpus.name}: {n:,} documents, {size / 1e6:.0f} MB", flush=True)
        removed = WORK / f"removed-{n}.tsv"
        ours = [sys.executable, __file__, "--side", "qudata", "--corpus", str(corpus)]
        ours += ["--removed", str(removed), "--partition", str(args.partition)]
        ours += ["--memory", args.memory]
        ref = [sys.executable, str(HERE / "ref_near_dedup.py"), str(corpus), os.devnull]
        sides = {"qudata": ours} if args.no_reference else {"qudata": ours, "rensa": ref}
        wall: dict[str, list[float]] = {name: [] for name in sides}
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        peaks: dict[str, float] = dict.fromkeys(sides, 0.0)
        detail: dict[str, object] = {}
        for _ in range(args.rounds):
            for name, command in sides.items():
                seconds, peak, cpu_seconds, out = peak_of(command)
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
                peaks[name] = max(peaks[name], peak)
                if name == "qudata":
                    detail = json.loads(out)
        result: dict[str, object] = {"docs": n, "rounds": args.rounds}
        for name in sides:
            result[f"{name}_wall_s"] = round(statistics.median(wall[name]), 2)
            result[f"{name}_cpu_s"] = round(statistics.median(cpu[name]), 2)
            result[f"{name}_peak_mib"] = round(peaks[name])
        if "rensa" in sides:
            for kind, values in (("wall", wall), ("cpu", cpu)):
                ratio = statistics.median(values["qudata"]) / statistics.median(values["rensa"])
                result[f"{kind}_ratio"] = round(ratio, 3)
        result |= detail | score(corpus, removed)
        print(json.dumps(result, indent=1), flush=True)
        removed.unlink()


if __name__ == "__main__":
    main()
