"""Reference for the `exact_dedup` job: orjson + normalise + xxh3_128 + a set.

The key of a document is xxh3_128 of its text after NFC normalisation, casefolding
and whitespace collapsing; the first document with a key is kept and its input line
written unchanged. Prints a one-line JSON summary on stdout.

    python ref_exact_dedup.py CORPUS.jsonl OUT.jsonl
"""

from __future__ import annotations

import argparse
import unicodedata

import orjson
import xxhash


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    args = ap.parse_args()

    seen: set[bytes] = set()
    n_read = n_written = 0
    with open(args.input, "rb") as fin, open(args.output, "wb") as fout:
        for line in fin:
            if not line.strip():
                continue
            text = orjson.loads(line).get("text") or ""
            n_read += 1
            norm = " ".join(unicodedata.normalize("NFC", text).casefold().split())
            key = xxhash.xxh3_128_digest(norm.encode("utf-8"))
            if key in seen:
                continue
            seen.add(key)
            fout.write(line if line.endswith(b"\n") else line + b"\n")
            n_written += 1
    print(orjson.dumps({"read": n_read, "written": n_written}).decode())


if __name__ == "__main__":
    main()
