"""The same bytes whatever runs the plan: 1, 2 or 3 workers, any partitioning.

The corpus mixes every reader (JSONL cut into byte-range partitions, with a bad line
exactly at a cut; gzip; JSON; Parquet; a text folder), documents without ids (derived
ids with repeats across partitions), conversations, preference pairs, exact and near
copies that cross partitions. Every file of the output must be identical, and the
manifests identical but for their ``run`` section: also the ``dedup`` section (its
parameters and cluster sizes) and the report's cluster chart drawn from it.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.io.sources import Source
from qudata.plan.partitions import plan_partitions

pytest.importorskip("pyarrow")
WORDS = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta",
    "theta", "iota", "kappa", "lambda", "mu", "nu", "xi",
]  # fmt: skip
CUT = 4096  # engine.partition_size of the runs: the big file becomes many partitions


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(words))


def _corpus(root: Path) -> tuple[list[Path], int]:
    """The inputs, and the line number of the bad line placed at a partition cut."""
    rng = random.Random(7)
    big = root / "big.jsonl"
    rows: list[dict[str, Any]] = []
    originals = [_text(rng, 60) for _ in range(40)]
    for n in range(160):
        kind = n % 8
        if kind == 0:
            rows.append({"text": originals[n % 40]})  # no id: derived, repeated later
        elif kind == 1:
            rows.append({"instruction": _text(rng, 8), "output": _text(rng, 20), "id": f"a{n}"})
        elif kind == 2:
            rows.append(
                {
                    "id": f"c{n}",
                    "messages": [
                        {"role": "user", "content": _text(rng, 6)},
                        {"role": "assistant", "content": _text(rng, 15)},
                    ],
                    "metadata": {"score": n / 7, "tag": "x" if n % 3 else None},
                }
            )
        elif kind == 3:
            rows.append(
                {
                    "id": f"p{n}",
                    "prompt": _text(rng, 6),
                    "chosen": _text(rng, 12),
                    "rejected": _text(rng, 12),
                }
            )
        elif kind == 4:  # a near copy of an earlier original
            words = originals[(n // 8) % 40].split()
            words[3] = "changed"
            rows.append({"id": f"n{n}", "text": " ".join(words), "quality_score": 0.9})
        else:
            rows.append({"id": f"d{n}", "text": _text(rng, 40), "quality_score": rng.random()})
    lines = [orjson.dumps(r) + b"\n" for r in rows]
    big.write_bytes(b"".join(lines))
    # the first line of the second partition becomes invalid JSON of the same length
    cut = plan_partitions([Source(str(big), "jsonl", "big.jsonl")], CUT)[1].span
    assert cut is not None
    offset, number = 0, 1
    while offset < cut[0]:
        offset += len(lines[number - 1])
        number += 1
    assert offset == cut[0]
    lines[number - 1] = b"{" + b"x" * (len(lines[number - 1]) - 2) + b"\n"
    big.write_bytes(b"".join(lines))
    packed = root / "more.jsonl.gz"
    gz_lines = [orjson.dumps({"id": f"g{n}", "text": originals[n]}) + b"\n" for n in range(30)]
    packed.write_bytes(gzip.compress(b"".join(gz_lines) + b"not json\n", mtime=0))
    array = root / "array.json"
    array.write_bytes(orjson.dumps([{"id": f"j{n}", "text": _text(rng, 30)} for n in range(10)]))
    import pyarrow as pa
    import pyarrow.parquet as pq

    blobs = [b"\xff" if n == 15 else b"ok" for n in range(20)]  # row 16: not UTF-8
    table = pa.table({"id": [f"q{n}" for n in range(20)], "text": originals[:20], "blob": blobs})
    pq.write_table(table, root / "rows.parquet", row_group_size=3)
    folder = root / "texts"
    folder.mkdir()
    for n in range(12):
        (folder / f"t{n:02}.txt").write_text(_text(rng, 50) + "\n\n" + _text(rng, 30))
    return [big, packed, array, root / "rows.parquet", folder], number


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


CONFIGS: dict[str, dict[str, Any]] = {
    "exact-splits-shuffle-gzip": {
        "pack": {
            "formats": ["chatml", "jsonl", "plain", "parquet", "preference", "megatron", "packed"]
        },
        "dedup": {"method": "exact"},
        "output": {
            "split": {"train": 0.8, "validation": 0.2},
            "shuffle": True,
            "shard_records": 25,
            "compression": "gzip",
        },
    },
    "near-zstd-sizes": {
        "pack": {"formats": ["chatml", "jsonl", "plain", "llmbuilder"]},
        "dedup": {"method": "near", "threshold": 0.7},
        "quality": {"min_quality_score": 0.2, "missing_score": "keep"},
        "output": {"compression": "zstd", "shard_size": "8KB", "add_metadata": ["tokens"]},
    },
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_any_number_of_workers_and_partitions_writes_the_same_bytes(
    tmp_path: Path, name: str
) -> None:
    if CONFIGS[name]["dedup"]["method"] == "near":
        pytest.importorskip("rensa")
    inputs, bad_line = _corpus(tmp_path)
    trees, runs = [], []
    for workers, size in ((1, None), (1, CUT), (2, CUT), (3, CUT)):
        config = {**CONFIGS[name], "engine": {"workers": workers, "partition_size": size}}
        out = tmp_path / f"out-{workers}-{size}"
        report = qudata.pack_dataset(inputs, out, config=config)
        assert report.balanced()
        tree = _tree(out)
        manifest = orjson.loads(tree.pop("manifest.json"))
        runs.append(manifest.pop("run"))
        trees.append((tree, manifest))
    first, manifest = trees[0]
    assert manifest["counts"]["read"] == 160 + 31 + 10 + 20 + 12
    for tree, other in trees[1:]:
        assert sorted(tree) == sorted(first)
        assert [k for k in first if first[k] != tree[k]] == []
        assert other == manifest
    assert [r["workers"] for r in runs] == [1, 1, 2, 3]
    found, dropped = manifest["dedup"], manifest["counts"]["dropped"]
    assert found["method"] == CONFIGS[name]["dedup"]["method"]
    assert found["exact_duplicates"] == dropped["duplicate_exact"] > 0
    assert found["near_duplicates"] == dropped.get("duplicate_near", 0)
    sizes = {int(size): n for size, n in found["cluster_sizes"].items()}
    assert sum(size * n for size, n in sizes.items()) == found["documents"]
    assert found["clusters"] == found["documents"] - found["duplicates"]
    assert max(sizes) > 2
    assert 'id="chart-clusters"' in first["report.html"].decode()
    # what depends on the executor and the partitioning is in ``run``
    assert all(set(r["dedup"]) >= {"spill_bytes", "ranges", "memory"} for r in runs)
    assert runs[0]["dedup"]["spill_bytes"] != runs[1]["dedup"]["spill_bytes"]
    rejects = [orjson.loads(line) for line in first["rejects.jsonl"].splitlines()]
    bad = [r for r in rejects if r["source"].endswith("big.jsonl") and r["reason"] == "invalid"]
    assert [r["line"] for r in bad] == [bad_line]
    assert any(r["reason"].startswith("duplicate") for r in rejects)
    gz = [r["line"] for r in rejects if r["source"].endswith(".gz") and r["reason"] == "invalid"]
    assert gz == [31]
    parquet = [r for r in rejects if r["source"].endswith(".parquet")]
    rows = [r["line"] for r in parquet if "UTF-8" in r["detail"]]
    assert rows == [16]  # numbered on across the row-group partitions
    # rejects are in input order: one block per input, in the inputs' order, by line
    blocks: list[str] = []
    for r in rejects:
        if not blocks or blocks[-1] != r["source"]:
            assert r["source"] not in blocks
            blocks.append(r["source"])
    files = [str(p) for p in inputs[:4]]
    assert [b for b in blocks if b in files] == [f for f in files if f in blocks]
    for source in blocks:
        lines = [r["line"] for r in rejects if r["source"] == source]
        assert lines == sorted(lines)


def test_derived_ids_repeat_in_input_order_across_partitions(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    rows = [{"text": f"same text {n % 3}"} for n in range(300)]
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = {
        "pack": {"formats": ["jsonl"], "jsonl": {"fields": ["id", "text"]}},
        "dedup": {"method": "none"},
        "engine": {"workers": 2, "partition_size": 1024},
        "quality": {"tokenizer": "none"},
    }
    qudata.pack_dataset(source, tmp_path / "out", config=config)
    out = (tmp_path / "out" / "jsonl" / "train-00000-of-00001.jsonl").read_bytes()
    ids = [orjson.loads(line)["id"] for line in out.splitlines()]
    bases = [ids[n] for n in range(3)]
    assert ids[3:6] == [f"{b}-2" for b in bases]
    assert ids[-1] == f"{bases[2]}-100"
    assert len(set(ids)) == 300
