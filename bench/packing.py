"""Packing efficiency of ``-f packed``: best-fit decreasing against sequential packing
and against the lower bound ``ceil(tokens / seq_len)``, at ``seq_len`` 2048 and 4096.

The input is a 50,000-record Alpaca-shaped set (``instruction``, ``input``, ``output``),
generated here with a fixed seed: words of the corpus's vocabulary (or a built-in list of words),
instruction lengths around 15 words, an input in 40% of the records, answers with a
long-tailed (log-normal) length of median 120 words, a few over 4,096 tokens (dropped
as ``too_long``, and counted). Each configuration is one ``qudata.pack_dataset`` run;
the figures are the manifest's.

    PYTHONPATH=src python bench/packing.py [--records 50000] [--corpus CORPUS.jsonl]
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import tempfile
import time
from pathlib import Path

import orjson

import qudata

WORD_TEXT = (
    "the of and to in is that for it as with was on be by this are from or an at which "
    "data model training text file value function return error system user process "
    "example result number string list table output input option format token language "
    "python module class method object type name path line test build run package"
)


def vocabulary(corpus: str | None) -> list[str]:
    """Distinct words of the first lines of ``corpus`` (a bench corpus), or a built-in list."""
    if not corpus:
        return WORD_TEXT.split()
    words: dict[str, None] = {}
    with open(corpus, "rb") as f:
        for number, line in enumerate(f):
            words.update(dict.fromkeys(orjson.loads(line).get("text", "").split()))
            if number > 200 or len(words) > 20_000:
                break
    return list(words) or WORD_TEXT.split()


def alpaca(path: Path, records: int, words: list[str], seed: int = 14) -> None:
    rng = random.Random(seed)

    def sentence(n: int) -> str:
        return " ".join(rng.choices(words, k=max(1, n)))

    with open(path, "wb") as out:
        for number in range(records):
            row = {
                "id": f"a{number}",
                "instruction": sentence(int(rng.gauss(15, 5))),
                "input": sentence(int(rng.expovariate(1 / 40))) if rng.random() < 0.4 else "",
                "output": sentence(int(rng.lognormvariate(math.log(120), 0.9))),
            }
            out.write(orjson.dumps(row) + b"\n")


def run(source: Path, seq_len: int, strategy: str, work: Path) -> dict[str, object]:
    out = work / f"out-{seq_len}-{strategy}"
    config = {"pack": {"packed": {"seq_len": seq_len, "strategy": strategy}}}
    start = time.perf_counter()
    report = qudata.pack_dataset(source, out, config=config, formats=["packed"])
    seconds = time.perf_counter() - start
    manifest = orjson.loads((out / "manifest.json").read_bytes())["formats"]["packed"]
    packing = manifest["packing"]["train"]
    shutil.rmtree(out)
    return {
        "seq_len": seq_len,
        "strategy": strategy,
        "documents": report.formats["packed"].documents,
        "dropped": dict(report.formats["packed"].dropped),
        "tokens": packing["tokens"],
        "rows": packing["rows"],
        "lower_bound": packing["lower_bound"],
        "efficiency": packing["packing_efficiency"],
        "over_bound": packing["rows"] / packing["lower_bound"] - 1,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--corpus", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qudata-bench-packing-"))
    try:
        source = work / "alpaca.jsonl"
        alpaca(source, args.records, vocabulary(args.corpus))
        print(f"{args.records:,} Alpaca-shaped records, {source.stat().st_size / 1e6:.1f} MB")
        print("| seq_len | strategy | rows | lower bound | rows over bound | efficiency | "
              "tokens | dropped | seconds |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for seq_len in (2048, 4096):
            for strategy in ("bfd", "sequential"):
                r = run(source, seq_len, strategy, work)
                print(
                    f"| {r['seq_len']} | {r['strategy']} | {r['rows']:,} | "
                    f"{r['lower_bound']:,} | {r['over_bound']:.3%} | {r['efficiency']:.4f} | "
                    f"{r['tokens']:,} | {r['dropped'] or '-'} | {r['seconds']:.1f} |",
                    flush=True,
                )
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
