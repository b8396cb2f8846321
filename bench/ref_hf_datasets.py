"""Reference for the `hf` job: the `pack` job done with Hugging Face `datasets`.

load_dataset("json") -> filter quality_score >= --min-quality -> map to ChatML
messages -> to_json (JSON lines). Offline, with a fresh cache folder that is removed
afterwards, so every run pays the Arrow conversion. Prints a JSON summary.

    python ref_hf_datasets.py CORPUS.jsonl OUT.jsonl [--min-quality 0.7] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--min-quality", type=float, default=0.7)
    ap.add_argument("--tmp", default=None, help="parent folder of the temporary cache")
    args = ap.parse_args()

    cache = tempfile.mkdtemp(prefix="hf-cache-", dir=args.tmp)
    os.environ.update(
        HF_DATASETS_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        HF_HOME=cache,
        HF_DATASETS_CACHE=os.path.join(cache, "datasets"),
        HF_DATASETS_DISABLE_PROGRESS_BARS="1",
    )
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        ds = datasets.load_dataset(
            "json", data_files=args.input, split="train", cache_dir=os.path.join(cache, "ds")
        )
        n_read = ds.num_rows
        min_q = args.min_quality

        def keep(batch: dict[str, list[Any]]) -> list[bool]:
            return [m["quality_score"] >= min_q for m in batch["metadata"]]

        def to_chatml(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            out = []
            for meta, text in zip(batch["metadata"], batch["text"], strict=True):
                title = meta.get("title")
                prompt = f'Write a document titled "{title}".' if title else "Write a document."
                out.append(
                    [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}]
                )
            return {"messages": out}

        ds = ds.filter(keep, batched=True)
        ds = ds.map(to_chatml, batched=True, remove_columns=ds.column_names)
        ds.to_json(args.output, lines=True, force_ascii=False)
        print(json.dumps({"read": n_read, "written": ds.num_rows}))
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
