"""``-f llmbuilder`` token ids against the smallest program that writes the same ``.npy``.

The reference reads the JSON lines with orjson, drops exact repeats of a text, encodes
every other non-blank text with SentencePiece (one batched call per 512 documents, one
thread), appends the EOS id and ``np.save``s the int32 ids: what
``pack.llmbuilder.tokenizer`` writes, without splits, checks or an account. qudata runs
``qudata pack -f llmbuilder --split train=1`` with ``quality.tokenizer: none`` and
``quality.token_threads: 1``, and ``-f jsonl`` alone (the pipeline without token ids).
qudata's file is checked against ``sp.encode`` + EOS of the documents it kept (its JSONL
output, one more run, not timed). Medians of interleaved rounds.

    PYTHONPATH=src python bench/llmbuilder_npy.py CORPUS.jsonl [--rounds 3] [--vocab 8000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import sentencepiece as spm


def reference(corpus: Path, model: Path, out: Path) -> None:
    processor = spm.SentencePieceProcessor(model_file=str(model))
    eos, parts, batch, seen = processor.eos_id(), [], [], set()

    def flush() -> None:
        for ids in processor.encode(batch, out_type=int, num_threads=1):
            parts.append(np.asarray([*ids, eos], dtype=np.int32))
        batch.clear()

    with open(corpus, "rb") as f:
        for line in f:
            text = orjson.loads(line).get("text") or ""
            key = hashlib.blake2b(text.encode("utf-8", "surrogatepass")).digest()
            if text.strip() and key not in seen:  # exact duplicates are dropped, as by qudata
                seen.add(key)
                batch.append(text)
                if len(batch) == 512:
                    flush()
    flush()
    np.save(out, np.concatenate(parts))
    print(f"  reference: {sum(map(len, parts)):,} ids")


def qudata(corpus: Path, config: Path, out: Path, formats: list[str]) -> None:
    args = [sys.executable, "-m", "qudata", "pack", str(corpus), "-o", str(out), "-q"]
    args += ["-c", str(config), "--split", "train=1", "--overwrite"]
    for name in formats:
        args += ["-f", name]
    subprocess.run(args, check=True)


def train(corpus: Path, model: Path, vocab: int) -> None:
    def lines():  # type: ignore[no-untyped-def]
        with open(corpus, "rb") as f:
            for line in f:
                yield from (x for x in orjson.loads(line).get("text", "").splitlines() if x)

    with open(model, "wb") as sink:
        spm.SentencePieceTrainer.train(
            sentence_iterator=lines(), model_writer=sink, vocab_size=vocab, model_type="bpe",
            input_sentence_size=200_000, shuffle_input_sentence=True, eos_id=3, bos_id=2,
            pad_id=0, unk_id=1, minloglevel=2, num_threads=1,
        )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=8000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, config = work / "tokenizer.model", work / "qudata.yaml"
        train(args.corpus, model, args.vocab)
        config.write_text(
            "quality:\n  tokenizer: none\n  token_threads: 1\n"
            f"pack:\n  llmbuilder:\n    tokenizer: {model}\n"
        )
        jobs = {
            "reference (orjson + sp.encode + np.save)": lambda: reference(
                args.corpus, model, work / "ref.npy"
            ),
            "qudata pack -f llmbuilder (token ids)": lambda: qudata(
                args.corpus, config, work / "q", ["llmbuilder"]
            ),
            "qudata pack -f jsonl (no token ids)": lambda: qudata(
                args.corpus, config, work / "j", ["jsonl"]
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in jobs}
        for _ in range(args.rounds):
            for name, job in jobs.items():
                start = time.perf_counter()
                job()
                times[name].append(time.perf_counter() - start)
        qudata(args.corpus, config, work / "q", ["llmbuilder", "jsonl"])  # checked, not timed
        processor = spm.SentencePieceProcessor(model_file=str(model))
        kept = [
            orjson.loads(line)["text"]
            for line in (work / "q" / "jsonl" / "train-00000-of-00001.jsonl").open("rb")
        ]
        expected = [i for t in kept if t.strip() for i in [*processor.encode(t), 3]]
        got = np.load(work / "q" / "llmbuilder" / "train.npy")
        assert got.tolist() == expected, "qudata's ids differ from sp.encode + EOS"
        print(f"{args.corpus.name}: {os.path.getsize(args.corpus) / 1e6:.0f} MB, "
              f"{len(got):,} ids, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        base = statistics.median(times[next(iter(jobs))])
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:45s} {median:6.2f} s  {median / base:4.2f}x")


if __name__ == "__main__":
    main()
