"""Packing efficiency of ``-f packed``: best-fit decreasing against sequential packing
and against the lower bound ``ceil(tokens / seq_len)``, at ``seq_len`` 2048 and 4096.

The input is a 50,000-record Alpaca-shaped set (``instruction``, ``input``, ``output``),
generated here with a fixed seed: words of the corpus's vocabulary (or a built-in list of words),
instruction lengths around 15 words, an input in 40% of the records, answers with a
long-tailed (log-normal) length of median 120 words, a few over 4,096 tokens (dropped
as ``too_long``, and counted). Each configuration is one ``qudata.pack_dataset`` run;
the figures are the manifest's. "L2" is the manifest's ``lower_bound_l2`` (Martello and
Toth's bound): no packing of those sequences, by any algorithm, has fewer rows. With
"rows over L2" it shows how far the packer is from the optimum; with "L2 over bound", how
far any packing of this input must be from ``ceil(tokens / seq_len)``.

With ``--conversations CORPUS.jsonl`` (a bench corpus, e.g. corpus-200.jsonl) the input is
the corpus as conversations instead: for each ``seq_len``, one ``-f chatml`` run makes
every document a system / user / assistant conversation (``SYSTEM``; the user turn from
the default ``user_template``: 'Write a document titled "T" (part i of n).'; the
assistant turn the document, or one part of it), with ``max_tokens_per_message`` of
``seq_len`` - 128 (``--message-tokens`` to choose), so that a part fits one row with its
turns' markup; those conversations are then packed. A conversation still over
``seq_len`` is dropped as ``too_long`` and counted.

    PYTHONPATH=src python bench/packing.py [--records 50000] [--corpus CORPUS.jsonl]
    PYTHONPATH=src python bench/packing.py --conversations CORPUS.jsonl [--message-tokens N]
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


SYSTEM = "You are a helpful assistant."
MARKUP_TOKENS = 128  # room for the system and user turns and the ChatML markers


def conversations(corpus: Path, message_tokens: int, out: Path) -> list[Path]:
    """``corpus`` as ChatML conversations (``-f chatml``); the files written."""
    chatml = {"system_message": SYSTEM, "max_tokens_per_message": message_tokens}
    start = time.perf_counter()
    report = qudata.pack_dataset(corpus, out, config={"pack": {"chatml": chatml}},
                                 formats=["chatml"])  # fmt: skip
    manifest = orjson.loads((out / "manifest.json").read_bytes())["formats"]["chatml"]
    events = manifest.get("events", {})
    print(
        f"{corpus.name}: {report.formats['chatml'].documents:,} documents -> "
        f"{manifest['records']:,} conversations ({events.get('split_documents', 0):,} "
        f"documents split, max_tokens_per_message {message_tokens:,}; dropped "
        f"{dict(report.formats['chatml'].dropped) or '-'}; {time.perf_counter() - start:.1f} s)",
        flush=True,
    )
    return sorted((out / "chatml").glob("*.jsonl"))


def run(source: Path | list[Path], seq_len: int, strategy: str, work: Path) -> dict[str, object]:
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
        "l2": packing["lower_bound_l2"],
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--corpus", default=None, help="words of the Alpaca records from here")
    parser.add_argument("--conversations", default=None, help="pack this corpus as chats")
    parser.add_argument("--message-tokens", type=int, default=None,
                        help="max_tokens_per_message of the chats (seq_len - 128)")  # fmt: skip
    parser.add_argument("--seq-len", default="2048,4096")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qudata-bench-packing-"))
    try:
        sources: dict[int, Path | list[Path]] = {}
        seq_lens = [int(n) for n in args.seq_len.split(",")]
        if args.conversations:
            corpus = Path(args.conversations)
            print(f"{corpus.name} as conversations, {corpus.stat().st_size / 1e6:.1f} MB")
        else:
            source = work / "alpaca.jsonl"
            alpaca(source, args.records, vocabulary(args.corpus))
            print(f"{args.records:,} Alpaca-shaped records, {source.stat().st_size / 1e6:.1f} MB")
            sources = dict.fromkeys(seq_lens, source)
        print("| seq_len | strategy | rows | lower bound | rows over bound | efficiency | "
              "L2 | L2 over bound | rows over L2 | tokens | dropped | seconds |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for seq_len in seq_lens:
            if args.conversations:
                budget = args.message_tokens or seq_len - MARKUP_TOKENS
                sources[seq_len] = conversations(corpus, budget, work / f"chats-{seq_len}")
            for strategy in ("bfd", "sequential"):
                r = run(sources[seq_len], seq_len, strategy, work)
                print(
                    f"| {r['seq_len']} | {r['strategy']} | {r['rows']:,} | "
                    f"{r['lower_bound']:,} | {r['over_bound']:.3%} | {r['efficiency']:.4f} | "
                    f"{r['l2']:,} | {r['l2'] / r['lower_bound'] - 1:.3%} | "
                    f"{r['rows'] / r['l2'] - 1:.3%} | "
                    f"{r['tokens']:,} | {r['dropped'] or '-'} | {r['seconds']:.1f} |",
                    flush=True,
                )
            if args.conversations:
                shutil.rmtree(work / f"chats-{seq_len}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
