"""The dedup step's summary in the manifest: its ``dedup`` section and its ``run`` figures.

A planted corpus of 13 documents: ten distinct ones (d0 to d9, 200 random words each),
two exact copies of d0 (case and spacing changed) and one near copy of d1 (one word of
200 changed: true Jaccard 191/201 of its 5-word shingles). So under ``near`` there are
12 - 2 = 10 clusters of which d0's has 3 documents, d1's 2 and the other eight 1; under
``exact`` the near copy is a cluster of its own.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.dedup.summary import DedupSummary

FAST = {"quality": {"tokenizer": "none"}, "pack": {"formats": ["jsonl"]}}


def planted(path: Path) -> Path:
    rnd = random.Random(11)
    vocab = ["".join(rnd.choices("abcdefghij", k=rnd.randint(3, 8))) for _ in range(3000)]
    texts = [" ".join(rnd.choices(vocab, k=200)) for _ in range(10)]
    near = texts[1].split()
    near[100] = "planted"
    rows = [{"id": f"d{n}", "text": t} for n, t in enumerate(texts)]
    rows.append({"id": "e1", "text": texts[0].upper()})
    rows.append({"id": "n1", "text": " ".join(near)})
    rows.append({"id": "e2", "text": "  " + texts[0].replace(" ", "   ")})
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def pack(tmp_path: Path, name: str, config: dict[str, Any]) -> dict[str, Any]:
    corpus = planted(tmp_path / "in.jsonl")
    out = tmp_path / name
    report = qudata.pack_dataset(corpus, out, config={**FAST, **config})
    assert report.balanced()
    manifest: dict[str, Any] = orjson.loads((out / "manifest.json").read_bytes())
    return manifest


NEAR = {
    "method": "near",
    "threshold": 0.8,
    "permutations": 128,
    "bands": 16,
    "rows": 8,
    "shingle_size": 5,
    "seed": 1,
    "documents": 13,
    "duplicates": 3,
    "exact_duplicates": 2,
    "near_duplicates": 1,
    "clusters": 10,
    "cluster_sizes": {"1": 8, "2": 1, "3": 1},
}


def test_the_manifest_records_the_parameters_and_the_clusters(tmp_path: Path) -> None:
    pytest.importorskip("rensa")
    # byte-range partitions of 4 KB: the copies are in other partitions than d0 and d1
    engine = {"workers": 2, "partition_size": 4096}
    manifest = pack(tmp_path, "near", {"dedup": {"method": "near"}, "engine": engine})
    assert manifest["dedup"] == NEAR
    assert manifest["counts"]["dropped"] == {"duplicate_exact": 2, "duplicate_near": 1}
    run = manifest["run"]
    assert run["workers"] == 2
    assert set(run["dedup"]) == {"memory", "spill_bytes", "ranges", "candidate_pairs",
                                 "confirmed_pairs"}  # fmt: skip
    assert run["dedup"]["memory"] == 1_000_000_000  # "1GB"
    assert run["dedup"]["spill_bytes"] > 13 * 128 * 4  # the signatures at least
    assert run["dedup"]["confirmed_pairs"] >= 1  # d1 ~ n1 (the exact copies are left out)


def test_exact_dedup_has_no_near_parameters(tmp_path: Path) -> None:
    manifest = pack(tmp_path, "exact", {"dedup": {"method": "exact"}})
    assert manifest["dedup"] == {
        **dict.fromkeys(("threshold", "permutations", "bands", "rows", "shingle_size", "seed")),
        "method": "exact",
        "documents": 13,
        "duplicates": 2,
        "exact_duplicates": 2,
        "near_duplicates": 0,
        "clusters": 11,
        "cluster_sizes": {"1": 10, "3": 1},
    }
    assert manifest["run"]["dedup"]["candidate_pairs"] == 0


def test_no_dedup_no_section(tmp_path: Path) -> None:
    manifest = pack(tmp_path, "none", {"dedup": {"method": "none"}})
    assert "dedup" not in manifest and "dedup" not in manifest["run"]


def test_sizes_are_string_keys_in_increasing_order() -> None:
    summary = DedupSummary(documents=25, cluster_sizes={12: 1, 2: 3, 1: 7})
    section = summary.as_manifest()
    assert list(section["cluster_sizes"].items()) == [("1", 7), ("2", 3), ("12", 1)]
    assert section["clusters"] == 11
    assert "spill_bytes" not in section and "spill_bytes" in summary.as_run()
