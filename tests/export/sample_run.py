"""A real run for the report tests and the README's screenshot (``docs/make_report_png.py``).

The quick start's sample (sections of the Python documentation), plus what a user's
corpus has and the sample lacks: documents from files deep in folders (long source
paths), documents that quote a benchmark question (dropped as ``contaminated``), and
exact copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

import qudata

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample.jsonl"
BENCHMARK = ROOT / "tests" / "data" / "decontamination" / "gsm_like.jsonl.gz"
QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
    "clips in May. How many clips did Natalia sell altogether?"
)


def write_input(path: Path, *, scored: bool = True) -> Path:
    """The sample plus 12 contaminated documents and 24 from deep paths (some copied)."""
    lines = []
    for line in SAMPLE.read_bytes().splitlines():
        record = orjson.loads(line)
        if not scored:
            record.pop("quality_score", None)
        lines.append(orjson.dumps(record))
    for n in range(36):
        record: dict[str, Any] = {
            "id": f"crawl-{n}",
            "text": f"Crawled page {n} about rivers and mountains. " * (10 + 7 * n),
            "source": f"corpora/web/2024/crawl-segment-{n % 4:06d}.warc.jsonl",
            "metadata": {"license": "cc-by-4.0"},
        }
        if scored:
            record["quality_score"] = round(0.5 + (n % 10) / 20, 2)
        if n < 12:
            record["text"] += " " + QUESTION
        lines.append(orjson.dumps(record))
        if n % 9 == 0:
            lines.append(orjson.dumps({**record, "id": f"copy-{n}"}))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def pack(folder: Path, *, scored: bool = True) -> Path:
    """Pack the input into ``folder/out``: chatml, jsonl and packed, two splits, near
    dedup, decontamination, ``min_quality_score`` 0.6 when scored."""
    source = write_input(folder / "corpus.jsonl", scored=scored)
    config: dict[str, Any] = {
        "quality": {
            "tokenizer": "cl100k_base" if scored else "none",
            "min_quality_score": 0.6 if scored else None,
            "decontamination": {"files": [str(BENCHMARK)], "ngram": 8},
        },
        "dedup": {"method": "near"},
        "output": {"split": {"train": 0.9, "validation": 0.1}},
        "pack": {"packed": {"seq_len": 2048}},
    }
    formats = ["chatml", "jsonl", "packed"] if scored else ["chatml", "jsonl"]
    out = folder / "out"
    qudata.pack_dataset(source, out, config=config, formats=formats)
    return out
