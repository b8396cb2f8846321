"""Error of the token estimators against exact cl100k_base counts.

For each JSONL file (one document per line, its text under ``text``) prints, per
estimator: the corpus-total error (signed) and the mean, median and p95 per-document
absolute error, in percent. Documents with no text, or no tokens, are skipped.

    PYTHONPATH=src python bench/token_estimate_error.py CORPUS.jsonl [MORE.jsonl ...]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import orjson

from qudata.quality.tokens import estimate_tokens, get_token_counter

ESTIMATORS: dict[str, Callable[[str], int]] = {
    "chars/4": lambda text: math.ceil(len(text) / 4),
    "qudata estimate": estimate_tokens,
}


def read_texts(path: str) -> list[str]:
    with open(path, "rb") as f:
        records = (orjson.loads(line) for line in f if line.strip())
        return [r["text"] for r in records if isinstance(r.get("text"), str) and r["text"]]


def figures(exact: list[int], estimated: list[int]) -> dict[str, float]:
    errors = sorted(abs(e / x - 1) * 100 for x, e in zip(exact, estimated, strict=True))
    n = len(errors)
    return {
        "total %": (sum(estimated) / sum(exact) - 1) * 100,
        "mean %": sum(errors) / n,
        "median %": errors[(n - 1) // 2],
        "p95 %": errors[max(0, math.ceil(0.95 * n) - 1)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="JSONL files with a 'text' field")
    args = parser.parse_args()
    counter = get_token_counter("cl100k_base")
    assert counter is not None
    for path in args.inputs:
        texts = read_texts(path)
        exact = counter.count_batch(texts)
        kept = [(t, x) for t, x in zip(texts, exact, strict=True) if x > 0]
        texts, exact = [t for t, _ in kept], [x for _, x in kept]
        chars = sum(map(len, texts))
        print(f"{path}: {len(texts)} documents, {chars} characters, {sum(exact)} cl100k tokens")
        for name, estimate in ESTIMATORS.items():
            row = figures(exact, [estimate(t) for t in texts])
            cells = "  ".join(f"{k} {v:+6.1f}" if k == "total %" else f"{k} {v:5.1f}"
                              for k, v in row.items())  # fmt: skip
            print(f"  {name:16s} {cells}")


if __name__ == "__main__":
    main()
