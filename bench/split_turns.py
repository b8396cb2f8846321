"""How ``pack.packed.on_overflow: split_turns`` scales with a conversation's length.

One conversation of N user/assistant turns (plus a system turn) is packed with
``seq_len`` 2048 by ``PackedFormatter.format_document``, each size in a fresh process
(its peak RSS is its own). The time should grow linearly with N: a 2,400-turn
conversation within about 4x the time of a 600-turn one.

    PYTHONPATH=src python bench/split_turns.py                     # ChatML, cl100k_base
    PYTHONPATH=src python bench/split_turns.py --template qwen2_5  # TRL's Jinja template

Needs ``tiktoken`` (cl100k_base); ``--template NAME`` takes a template of TRL's package.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def conversation(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You answer questions about the weather."}]
    for n in range(turns // 2):
        messages.append({"role": "user", "content": f"Question {n}: will it rain in city {n}?"})
        messages.append(
            {"role": "assistant", "content": f"Answer {n}: " + "light rain, then sun. " * 8}
        )
    return messages


def one(turns: int, seq_len: int, template: str) -> dict[str, float]:
    from qudata.models import Document
    from qudata.pack.packed import PackedFormatter

    if template != "chatml":
        import trl

        template = os.path.join(os.path.dirname(trl.__file__), "chat_templates", template)
        template += ".jinja"
    config = {
        "pack": {"packed": {"seq_len": seq_len, "on_overflow": "split_turns", "template": template}}
    }
    formatter = PackedFormatter(config)
    doc = Document(text="", id="long", messages=conversation(turns))
    formatter.format_document(  # warm-up: tokenizer, template
        Document(text="", id="w", messages=conversation(4)), formatter.options, {}
    )
    state: dict[str, object] = {}
    started = time.perf_counter()
    records = formatter.format_document(doc, formatter.options, state)
    seconds = time.perf_counter() - started
    assert isinstance(records, list), records
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    chars = len(json.dumps(doc.messages))
    return {"turns": turns, "seconds": seconds, "peak_mb": peak, "records": len(records),
            "record_kb": chars / 1024}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[300, 600, 1200, 2400])
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--template", default="chatml")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.seq_len, args.template)))
        return
    rows = []
    for turns in args.turns:
        command = [sys.executable, __file__, "--one", str(turns), "--seq-len", str(args.seq_len)]
        command += ["--template", args.template]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        row = rows[-1]
        print(f"{row['turns']:>6} turns  {row['record_kb']:7.0f} KB  {row['seconds']:7.2f} s  "
              f"{row['peak_mb']:6.0f} MB peak  {row['records']} pieces", flush=True)  # fmt: skip
    by_turns = {r["turns"]: r["seconds"] for r in rows}
    if 600 in by_turns and 2400 in by_turns:
        print(f"2400 / 600 turns: {by_turns[2400] / by_turns[600]:.2f}x the time")


if __name__ == "__main__":
    main()
