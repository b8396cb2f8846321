"""Reference for the `pack` and `memory` jobs: a minimal streaming orjson loop.

Reads JSONL, keeps documents with quality_score >= --min-quality, writes one ChatML
conversation per line. Prints a one-line JSON summary on stdout.

    python ref_orjson_loop.py CORPUS.jsonl OUT.jsonl [--min-quality 0.7]
"""

from __future__ import annotations

import argparse

import orjson


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--min-quality", type=float, default=0.7)
    args = ap.parse_args()

    n_read = n_written = 0
    with open(args.input, "rb") as fin, open(args.output, "wb") as fout:
        for line in fin:
            if not line.strip():
                continue
            rec = orjson.loads(line)
            n_read += 1
            meta = rec.get("metadata") or {}
            score = meta.get("quality_score", rec.get("quality_score"))
            if score is not None and score < args.min_quality:
                continue
            title = meta.get("title") or rec.get("title")
            prompt = f'Write a document titled "{title}".' if title else "Write a document."
            conv = {
                "messages": [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": rec["text"]},
                ]
            }
            fout.write(orjson.dumps(conv, option=orjson.OPT_APPEND_NEWLINE))
            n_written += 1
    print(orjson.dumps({"read": n_read, "written": n_written}).decode())


if __name__ == "__main__":
    main()
