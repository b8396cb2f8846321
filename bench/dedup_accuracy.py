"""Dedup accuracy on a corpus with planted duplicates, near-dedup speed, and memory.

The corpus comes from ``/work/shared/corpus/make_corpus.py`` (built here with
``--target-mb`` unless ``--corpus`` is given; it needs ``apt-get install -y
python3.11-doc man-db`` unless the base cache exists). Its sidecar
``<corpus>.dups.jsonl`` lists the planted duplicates (kinds ``exact``, ``near`` and
``natural_exact``, with the true word 5-gram Jaccard ``jaccard5`` to the original).

* Accuracy: the in-memory oracle (``tests/dedup/oracle.py``) exact and near over the
  corpus in input order (in batches as ``pack`` makes them): the share of planted
  duplicates removed per kind, and the removed documents that are not listed, each
  checked by its true 5-gram Jaccard with the kept copy it was matched to (genuine
  natural near duplicates vs mistakes). ``--qudata CMD`` also reads the removals of
  ``CMD pack`` instead.
* Speed: the oracle's near dedup (one process) against a minimal rensa
  script (lower-cased word 5-gram shingles, MinHash in batches, the same LSH bands,
  candidates confirmed by the estimated Jaccard), texts in memory, ``--rounds``
  rounds interleaved, medians.
* ``--memory N``: exact (tracemalloc) and near (RSS) state for N distinct documents.
* The accuracy is measured for the streaming deduplicators and for the partitioned
  plan's on-disk step (``qudata.dedup.step``, 4 partitions).

    python bench/dedup_accuracy.py --target-mb 20
    python bench/dedup_accuracy.py --corpus bench/.work/corpus/corpus-50.jsonl --rounds 0
    python bench/dedup_accuracy.py --memory 1000000 --rounds 0 --no-accuracy
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import rensa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dedup.oracle import Deduplicator, ExactDeduplicator, NearDeduplicator  # the in-memory oracle
from qudata.dedup.files import lsh_bands

MAKE_CORPUS = "/work/shared/corpus/make_corpus.py"
WORK = Path(__file__).parent / ".work" / "corpus"
Items = list[tuple[str, str]]


def shingle_list(text: str, k: int = 5) -> list[str]:
    words = text.lower().split()
    return [" ".join(words[i : i + k]) for i in range(max(1, len(words) - k + 1))]


def jaccard(a: str, b: str) -> float:
    sa, sb = set(shingle_list(a)), set(shingle_list(b))
    return len(sa & sb) / max(1, len(sa | sb))


def build_corpus(target_mb: float) -> Path:
    """make_corpus.py's output cut to its first ``target_mb`` (its base documents alone
    are about 36 MB), with the listing of the planted duplicates that remain."""
    out = WORK / f"dedup-{target_mb:g}.jsonl"
    if Path(f"{out}.dups.jsonl").exists():
        return out
    WORK.mkdir(parents=True, exist_ok=True)
    full = WORK / f"dedup-{target_mb:g}-full.jsonl"
    command = [sys.executable, MAKE_CORPUS, "--out", str(full), "--target-mb", str(target_mb)]
    command += ["--exact-dup-frac", "0.03", "--near-dup-frac", "0.03"]
    command += ["--base-cache", str(WORK / "base.jsonl")]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    kept, size = set(), 0
    with open(full, "rb") as source, open(out, "wb") as sink:
        for line in source:
            if size >= target_mb * 2**20:
                break
            sink.write(line)
            size += len(line)
            kept.add(json.loads(line)["id"])
    with open(f"{full}.dups.jsonl", encoding="utf-8") as source:
        listed = [line for line in source if json.loads(line)["id"] in kept]
    Path(f"{out}.dups.jsonl").write_text("".join(listed), encoding="utf-8")
    full.unlink()
    Path(f"{full}.dups.jsonl").unlink()
    return out


def batches(items: Items, size: int = 512, chars: int = 1_000_000) -> Iterator[Items]:
    """As ``pack`` batches: at most ``size`` documents or about ``chars`` characters."""
    batch: Items = []
    total = 0
    for item in items:
        batch.append(item)
        total += len(item[1])
        if len(batch) >= size or total >= chars:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def run_ours(dedup: Deduplicator, items: Items) -> dict[str, tuple[str, str]]:
    """id -> (duplicate_of, reason) of every removed document."""
    removed = {}
    for batch in batches(items):
        for (doc_id, _), v in zip(batch, dedup.check_batch(batch), strict=True):
            if v.duplicate_of is not None:
                removed[doc_id] = (v.duplicate_of, str(v.reason))
    dedup.close()
    return removed


def run_plan(
    items: Items, method: str, threshold: float, partitions: int = 4
) -> dict[str, tuple[str, str]]:
    """As :func:`run_ours`, through the partitioned plan's on-disk dedup step
    (``qudata.dedup.step``): ``partitions`` partitions in input order, a 64 MB budget."""
    from qudata.config import DedupConfig
    from qudata.dedup.step import KeyWriter, read_verdicts, resolve

    config = DedupConfig(method=method, threshold=threshold, memory="64MB")
    step = -(-len(items) // partitions)
    parts = [items[i : i + step] for i in range(0, len(items), step)]
    removed = {}
    with tempfile.TemporaryDirectory() as tmp:
        for p, part in enumerate(parts):
            writer = KeyWriter(Path(tmp), p, config)
            position = 0
            for batch in batches(part):
                writer.add_batch([(position + i, d, t) for i, (d, t) in enumerate(batch)])
                position += len(batch)
            writer.close()
        resolve(Path(tmp), len(parts), config)
        for p, part in enumerate(parts):
            verdicts = read_verdicts(Path(tmp), p)
            for position, (doc_id, _) in enumerate(part):
                v = verdicts[position]
                if v.duplicate_of is not None:
                    removed[doc_id] = (v.duplicate_of, str(v.reason))
    return removed


def run_reference(items: Items, threshold: float) -> int:
    """Minimal rensa near dedup; returns the number of documents kept."""
    bands, _ = lsh_bands(threshold, 128)
    lsh = rensa.RMinHashLSH(threshold=threshold, num_perm=128, num_bands=bands)
    kept: list[Any] = []
    for batch in batches(items):
        sets = [shingle_list(text) for _, text in batch]
        for minhash in rensa.RMinHash.from_token_sets(sets, num_perm=128, seed=1):
            if not any(kept[k].jaccard(minhash) >= threshold for k in lsh.query(minhash)):
                lsh.insert(len(kept), minhash)
                kept.append(minhash)
    return len(kept)


def run_cli(qudata: str, corpus: Path, method: str, threshold: float) -> dict[str, tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [*qudata.split(), "pack", str(corpus), "-o", tmp, "-f", "jsonl", "--overwrite"]
        command += ["--tokenizer", "none", "--dedup", method, "--dedup-threshold", str(threshold)]
        subprocess.run([*command, "-q"], check=True)
        with open(Path(tmp) / "rejects.jsonl", encoding="utf-8") as rejects:
            rows = [json.loads(x) for x in rejects]
    return {r["id"]: (r["duplicate_of"], r["reason"]) for r in rows if "duplicate_of" in r}


def report(name: str, removed: dict[str, tuple[str, str]], planted: list[Any], texts: Any) -> None:
    print(f"\n{name}: removed {len(removed):,}")
    for kind in ("exact", "natural_exact", "near"):
        ids = {p["id"] for p in planted if p["kind"] == kind}
        hit, share = len(ids & removed.keys()), 100 * len(ids & removed.keys()) / max(1, len(ids))
        print(f"  planted {kind:<13} removed {hit:>5}/{len(ids):<5} = {share:.2f}%")
    near = [p for p in planted if p["kind"] == "near"]
    if near and "near" in name:
        over = [p for p in near if p["jaccard5"] >= 0.8]
        hit = sum(p["id"] in removed for p in over)
        missed = sorted(round(p["jaccard5"], 3) for p in near if p["id"] not in removed)
        print(
            f"  planted near with true Jaccard >= 0.8: removed {hit}/{len(over)}"
            f" = {100 * hit / max(1, len(over)):.2f}%; true Jaccard of the missed: {missed}"
        )
    listed = {p["id"] for p in planted}
    extra = {i: d for i, d in removed.items() if i not in listed}
    sims = sorted(jaccard(texts[i], texts[d[0]]) for i, d in extra.items())
    share = 100 * len(extra) / max(1, len(removed))
    print(f"  removed but not listed: {len(extra)} = {share:.2f}% of removals")
    for floor in (0.8, 0.7, 0.5):
        bad = sum(s < floor for s in sims)
        print(
            f"    with true 5-gram Jaccard < {floor} to the kept copy: {bad}"
            f" = {100 * bad / max(1, len(removed)):.2f}% of removals"
        )
    if sims:
        print(f"    their true Jaccard: min {sims[0]:.3f}, median {statistics.median(sims):.3f}")


def timing(items: Items, threshold: float, rounds: int) -> None:
    sides: dict[str, Callable[[], object]] = {
        "oracle near (1 process)": lambda: run_ours(NearDeduplicator(threshold), items),
        "reference rensa script": lambda: run_reference(items, threshold),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, side in sides.items():
            gc.collect()
            start = time.perf_counter()
            side()
            times[name].append(time.perf_counter() - start)
    ref = statistics.median(times["reference rensa script"])
    print(f"\nnear dedup time, {rounds} rounds interleaved (texts in memory), median seconds:")
    for name, values in times.items():
        median = statistics.median(values)
        rounds_text = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {name:<30} {median:6.2f}  ({median / ref:.2f}x reference)  [{rounds_text}]")


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(x for x in status if x.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def memory(n: int) -> None:
    """State per million documents: exact by tracemalloc and by RSS, near by RSS."""
    rnd = random.Random(0)
    for traced in (False, True):
        gc.collect()
        before = rss_mb()
        if traced:
            tracemalloc.start()
        exact = ExactDeduplicator()
        for i in range(n):
            exact.check_key(f"doc-{i:012d}", rnd.randbytes(16))
        used = tracemalloc.get_traced_memory()[0] / 2**20 if traced else rss_mb() - before
        tracemalloc.stop()
        del exact
        how = "tracemalloc" if traced else "RSS"
        print(f"\nexact: {used / n * 1e6:.0f} MB per million distinct texts ({how}, n={n:,})")
    gc.collect()
    before = rss_mb()
    near = NearDeduplicator()
    for start in range(0, n, 2000):
        batch = [
            (f"doc-{i:012d}", " ".join(f"w{rnd.randrange(10**9)}" for _ in range(40)))
            for i in range(start, min(n, start + 2000))
        ]
        near.check_batch(batch)
    gc.collect()
    print(f"near: {(rss_mb() - before) / n * 1e6:.0f} MB per million kept documents (RSS, n={n:,})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, help="a make_corpus.py output (default: build one)")
    parser.add_argument("--target-mb", type=float, default=20, help="size of the corpus to build")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (0: no timing)")
    parser.add_argument("--qudata", help="measure accuracy through `CMD pack` too")
    parser.add_argument("--memory", type=int, default=0, metavar="N", help="memory for N docs")
    parser.add_argument("--no-accuracy", action="store_true")
    args = parser.parse_args()
    if not args.no_accuracy or args.rounds:
        corpus = args.corpus or build_corpus(args.target_mb)
        with open(f"{corpus}.dups.jsonl", encoding="utf-8") as listing:
            planted = [json.loads(line) for line in listing]
        with open(corpus, encoding="utf-8") as lines:
            items = [(r["id"], r["text"]) for r in map(json.loads, lines)]
        texts = dict(items)
        kinds = {
            k: sum(p["kind"] == k for p in planted) for k in ("exact", "near", "natural_exact")
        }
        size = os.path.getsize(corpus) / 2**20
        print(f"corpus {corpus}: {size:.1f} MB, {len(items):,} documents; planted {kinds}")
    if not args.no_accuracy:
        t = args.threshold
        report("exact", run_ours(ExactDeduplicator(), items), planted, texts)
        report(f"near {t}", run_ours(NearDeduplicator(t), items), planted, texts)
        report("exact, dedup step on disk", run_plan(items, "exact", t), planted, texts)
        report(f"near {t}, dedup step on disk", run_plan(items, "near", t), planted, texts)
        if args.qudata:
            for method in ("exact", "near"):
                removed = run_cli(args.qudata, corpus, method, t)
                report(f"`pack --dedup {method}`", removed, planted, texts)
    if args.rounds:
        timing(items, args.threshold, args.rounds)
    if args.memory:
        memory(args.memory)


if __name__ == "__main__":
    main()
