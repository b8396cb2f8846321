"""Reference for the `near_dedup` job: rensa MinHash LSH, minimal.

Each document: RMinHash with 128 permutations over its lower-cased word 5-gram
shingles; candidates from rensa's RMinHashLSH (threshold 0.8, 16 bands of 8 rows)
are confirmed by the MinHash Jaccard estimate >= 0.8. The first document of a
group is kept and its input line written unchanged. Prints a JSON summary.

    python ref_near_dedup.py CORPUS.jsonl OUT.jsonl [--threshold 0.8]
"""

from __future__ import annotations

import argparse

import orjson
from rensa import RMinHash, RMinHashLSH

NUM_PERM = 128
NGRAM = 5


def shingles(text: str) -> list[str]:
    words = text.lower().split()
    return [" ".join(words[i : i + NGRAM]) for i in range(max(1, len(words) - NGRAM + 1))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--threshold", type=float, default=0.8)
    args = ap.parse_args()

    lsh = RMinHashLSH(threshold=args.threshold, num_perm=NUM_PERM, num_bands=16)
    kept: dict[int, RMinHash] = {}
    n_read = n_written = 0
    with open(args.input, "rb") as fin, open(args.output, "wb") as fout:
        for line in fin:
            if not line.strip():
                continue
            text = orjson.loads(line).get("text") or ""
            n_read += 1
            mh = RMinHash(num_perm=NUM_PERM, seed=42)
            mh.update(shingles(text))
            if any(kept[k].jaccard(mh) >= args.threshold for k in lsh.query(mh)):
                continue
            lsh.insert(n_read, mh)
            kept[n_read] = mh
            fout.write(line if line.endswith(b"\n") else line + b"\n")
            n_written += 1
    print(orjson.dumps({"read": n_read, "written": n_written}).decode())


if __name__ == "__main__":
    main()
