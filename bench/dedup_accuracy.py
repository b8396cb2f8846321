"""Dedup accuracy on a corpus with planted duplicates (the issue's done-when figures).

Runs ``qudata pack --dedup exact`` and ``--dedup near`` on a corpus made by
``make_corpus.py`` (planted duplicates listed in ``<corpus>.dups.jsonl`` with kinds
``exact``, ``near`` and ``natural_exact``) and reads back ``rejects.jsonl``:

* recall: the share of planted exact / near duplicates that were removed;
* false removals: removed documents that are not listed duplicates. Each is checked
  against the document it was matched with by true word 5-gram Jaccard similarity,
  so unlisted but genuine duplicates are told apart from real mistakes.

    python3 bench/dedup_accuracy.py --corpus bench/.work/corpus/corpus-50.jsonl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def shingles(text: str, k: int = 5) -> set[str]:
    words = text.lower().split()
    return {" ".join(words[i : i + k]) for i in range(max(1, len(words) - k + 1))}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / max(1, len(sa | sb))


def run(
    qudata: list[str], corpus: Path, method: str, out: Path, threshold: float
) -> list[dict[str, object]]:
    command = [
        *qudata,
        "pack",
        str(corpus),
        "-o",
        str(out),
        "-f",
        "jsonl",
        "--tokenizer",
        "none",
        "--dedup",
        method,
        "--dedup-threshold",
        str(threshold),
        "--overwrite",
        "-q",
    ]
    subprocess.run(command, check=True)
    with open(out / "rejects.jsonl", encoding="utf-8") as rejects:
        return [json.loads(line) for line in rejects]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("bench/.work/corpus/corpus-50.jsonl"))
    parser.add_argument("--qudata", default=f"{sys.executable} -m qudata")
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args()
    with open(f"{args.corpus}.dups.jsonl", encoding="utf-8") as listing:
        planted = [json.loads(line) for line in listing]
    texts = {}
    with open(args.corpus, encoding="utf-8") as corpus:
        for line in corpus:
            row = json.loads(line)
            texts[row["id"]] = row["text"]
    kinds: dict[str, set[str]] = {}
    for item in planted:
        kinds.setdefault(item["kind"], set()).add(item["id"])
    listed = set().union(*kinds.values())
    print(
        f"corpus {args.corpus}: {len(texts):,} documents; planted "
        + ", ".join(f"{k} {len(v)}" for k, v in sorted(kinds.items()))
    )
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("exact", "near"):
            out = Path(tmp) / method
            rejects = run(args.qudata.split(), args.corpus, method, out, args.threshold)
            removed = {r["id"]: r for r in rejects if str(r["reason"]).startswith("duplicate")}
            print(f"\n--dedup {method}: removed {len(removed):,}")
            for kind in ("exact", "natural_exact", "near"):
                ids = kinds.get(kind, set())
                found = len(ids & removed.keys())
                print(
                    f"  planted {kind:<13} removed {found:>5}/{len(ids):<5} "
                    f"= {100 * found / max(1, len(ids)):.1f}%"
                )
            near = [p for p in planted if p["kind"] == "near"]
            over = {str(p["id"]) for p in near if float(p["jaccard5"]) >= args.threshold}
            found = len(over & removed.keys())
            print(
                f"  planted near with true Jaccard >= {args.threshold}: removed "
                f"{found}/{len(over)} = {100 * found / max(1, len(over)):.1f}%"
            )
            extra = [r for i, r in removed.items() if i not in listed]
            floor = min(0.7, args.threshold)
            genuine = [
                r
                for r in extra
                if jaccard(texts[str(r["id"])], texts[str(r["duplicate_of"])]) >= floor
            ]
            print(
                f"  removed but not listed: {len(extra)} "
                f"({100 * len(extra) / max(1, len(removed)):.2f}% of removals); "
                f"of these, {len(genuine)} have true 5-gram Jaccard >= {floor} with the kept "
                "copy; "
                f"false removals: {len(extra) - len(genuine)} "
                f"({100 * (len(extra) - len(genuine)) / max(1, len(removed)):.2f}%)"
            )


if __name__ == "__main__":
    main()
