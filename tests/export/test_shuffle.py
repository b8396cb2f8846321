"""Shuffle: SpillShuffler directly (bounded memory, many buckets) and ``--shuffle`` in a run."""

from __future__ import annotations

import itertools
import os
import resource
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
import xxhash

import qudata
from qudata.export.shuffle import _HEADER, SpillShuffler

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample.jsonl"
CONFIG: dict[str, Any] = {
    "quality": {"tokenizer": "none"},
    "pack": {
        "chatml": {"max_tokens_per_message": None, "user_template": "{{ id }}"},
        "jsonl": {"fields": ["id", "text", "metadata"]},
    },
    "dedup": {"method": "exact"},
    "output": {"split": {"train": 0.8, "validation": 0.1, "test": 0.1}, "shard_records": 50},
}
FORMATS = ["chatml", "jsonl", "parquet", "llmbuilder"]


def ids(n: int) -> list[str]:
    return [f"doc-{i:06d}" for i in range(n)]


def key(doc_id: str, seed: int = 0) -> int:
    return xxhash.xxh3_64_intdigest(doc_id.encode(), seed=seed)


# ---------------------------------------------------------------- SpillShuffler


@pytest.mark.parametrize("buckets", [1, 2, 16, 17, 100, 1024])
def test_replay_is_every_payload_once_in_seeded_key_order(buckets: int, tmp_path: Path) -> None:
    names = ids(5000)
    shuffler = SpillShuffler(tmp_path, seed=3, buckets=buckets)
    for name in names:
        shuffler.add(name, {"id": name, "n": [1, 2.5, None]})
    out = [p["id"] for p in shuffler.replay()]
    assert sorted(out) == names
    assert out == sorted(names, key=lambda n: key(n, 3))  # independent of the bucket count
    assert list(tmp_path.iterdir()) == []  # spill files removed


def test_encoded_payloads_come_back_as_they_were_in_the_same_order(tmp_path: Path) -> None:
    """A part's entries (header line and bytes, newlines inside) are shuffled as bytes,
    in the order the JSON payloads of the same ids take."""
    names = ids(3000)
    encoded = SpillShuffler(tmp_path, seed=5, buckets=7, encoded=True)
    decoded = SpillShuffler(tmp_path, seed=5, buckets=7)
    for number, name in enumerate(names):
        encoded.add(name, b'["train","%s"]\n\x00line\nbytes %d' % (name.encode(), number))
        decoded.add(name, [name, number])
    got = list(encoded.replay())
    expected = [
        b'["train","%s"]\n\x00line\nbytes %d' % (name.encode(), number)
        for name, number in decoded.replay()
    ]
    assert got == expected and len(got) == len(names)


def test_ties_replay_in_input_order(tmp_path: Path) -> None:
    shuffler = SpillShuffler(tmp_path, seed=0, buckets=8)
    for number in range(20):
        shuffler.add("same-id", number)
    assert list(shuffler.replay()) == list(range(20))


def test_spill_files_live_in_one_hidden_folder_of_the_directory(tmp_path: Path) -> None:
    shuffler = SpillShuffler(tmp_path, seed=0, buckets=1024)
    for name in ids(2000):
        shuffler.add(name, name)
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith(".shuffle-")
    assert len(list(folder.iterdir())) == 1024
    shuffler.cleanup()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("buckets", [16, 17, 20, 33, 100, 1000])
def test_buckets_are_balanced_so_memory_stays_bounded(buckets: int, tmp_path: Path) -> None:
    """Replay holds one bucket in memory, so no bucket may hold much more than its share.

    The bucket is the key's top bits clamped to the last bucket: with a bucket count just
    above a power of two (17: 32 slots, slots 16..31 all go to bucket 16) the last bucket
    holds about half of all records, 8x its share; the pipeline asks for
    ``size // 32 MB + 1`` buckets, so a 540 MB input gets 17.
    """
    n = max(20_000, 200 * buckets)  # ~200 per bucket: a 1.5x margin is then ~7 sigma
    shuffler = SpillShuffler(tmp_path, seed=0, buckets=buckets)
    for name in ids(n):
        shuffler.add(name, "x" * 20)
    sizes = []
    for handle in shuffler._buckets:
        handle.flush()
        sizes.append(os.path.getsize(handle.name))
    shuffler.cleanup()
    record = len(_HEADER.pack(0, 0, 0)) + len(orjson.dumps("x" * 20))
    counts = [size // record for size in sizes]
    mean = n / buckets  # a fair hash: binomial counts, far below mean + 6 standard deviations
    assert max(counts) <= mean + 6 * mean**0.5 + 1, (max(counts) / mean, counts[-3:])


def test_a_run_shuffling_a_large_input_stays_within_the_open_file_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every (format, split) shuffler keeps all its bucket files open at once. A 4 GB input
    gets 128 buckets; with 3 splits and 3 formats that is 1,152 open files, over the usual
    soft limit of 1,024 (``ulimit -n``), and the run fails with EMFILE. (1024 buckets, the
    pipeline's maximum, exceed it with a single format and split.)"""
    import qudata.pipeline as pipeline

    monkeypatch.setattr(pipeline, "_shuffle_buckets", lambda sources: 128)  # as for 4 GB
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = 1024 if hard == resource.RLIM_INFINITY else min(1024, hard)
    config = {**CONFIG, "output": {**CONFIG["output"], "shuffle": True}}
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        qudata.pack_dataset(
            SAMPLE, tmp_path / "out", formats=["chatml", "jsonl", "parquet"], config=config
        )
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_cleanup_after_a_partial_replay(tmp_path: Path) -> None:
    shuffler = SpillShuffler(tmp_path, seed=0, buckets=4)
    for name in ids(100):
        shuffler.add(name, name)
    replay = shuffler.replay()
    next(replay)
    replay.close()
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- --shuffle in a run


LLM_SEP = "\n<|endoftext|>\n"  # after every document of -f llmbuilder


def read_ids(out: Path, fmt: str) -> dict[str, list[str]]:
    """Document ids by split in file order (chatml: the user turn is the id)."""
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    result: dict[str, list[str]] = defaultdict(list)
    for file in manifest["formats"][fmt]["files"]:
        path = out / file["path"]
        if fmt == "parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
            result[file["split"]].extend(r["id"] for r in rows)
        elif fmt == "llmbuilder":
            result[file["split"]].extend(path.read_text(encoding="utf-8").split(LLM_SEP)[:-1])
        else:
            for line in path.read_bytes().splitlines():
                row = orjson.loads(line)
                if fmt == "chatml":
                    result[file["split"]].append(row["messages"][0]["content"])
                else:
                    result[file["split"]].append(row["id"])
    return dict(result)


def raw_records(out: Path, fmt: str) -> dict[str, list[bytes]]:
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    result: dict[str, list[bytes]] = defaultdict(list)
    for file in manifest["formats"][fmt]["files"]:
        path = out / file["path"]
        if fmt == "parquet":
            import pyarrow.parquet as pq

            result[file["split"]].extend(orjson.dumps(r) for r in pq.read_table(path).to_pylist())
        elif fmt == "llmbuilder":
            text = path.read_bytes().decode("utf-8")
            result[file["split"]].extend(t.encode() for t in text.split(LLM_SEP)[:-1])
        else:
            result[file["split"]].extend(path.read_bytes().splitlines())
    return dict(result)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    base = tmp_path_factory.mktemp("shuffle")
    result = {}
    for shuffle in (False, True):
        out = base / f"shuffle-{shuffle}"
        config = {**CONFIG, "output": {**CONFIG["output"], "shuffle": shuffle}}
        qudata.pack_dataset(SAMPLE, out, formats=FORMATS, config=config)
        result[shuffle] = out
    return result


@pytest.mark.parametrize("fmt", FORMATS)
def test_shuffled_split_is_a_permutation_of_the_unshuffled_one(
    runs: dict[bool, Path], fmt: str
) -> None:
    plain, shuffled = raw_records(runs[False], fmt), raw_records(runs[True], fmt)
    assert plain.keys() == shuffled.keys()
    for split in plain:
        assert sorted(plain[split]) == sorted(shuffled[split]), split
        if len(plain[split]) > 20:
            assert plain[split] != shuffled[split], split


def test_shuffle_moves_most_documents_away_from_input_order(runs: dict[bool, Path]) -> None:
    before, after = read_ids(runs[False], "jsonl"), read_ids(runs[True], "jsonl")
    order = before["train"]
    position = {doc: i for i, doc in enumerate(order)}
    shuffled = [position[d] for d in after["train"]]
    moved = sum(abs(i - p) > 5 for i, p in enumerate(shuffled))
    assert moved > 0.8 * len(shuffled)
    # neighbours in the input are rarely neighbours after shuffling
    kept_pairs = sum(b == a + 1 for a, b in itertools.pairwise(shuffled))
    assert kept_pairs < 0.05 * len(shuffled)


def test_shuffled_order_is_the_same_in_every_format(runs: dict[bool, Path]) -> None:
    out = runs[True]
    orders = {fmt: read_ids(out, fmt) for fmt in ("chatml", "jsonl", "parquet")}
    for split in orders["jsonl"]:
        sets = [set(orders[f][split]) for f in orders]
        common = set.intersection(*sets)
        assert len(common) >= 0.95 * len(orders["jsonl"][split])
        sequences = [[d for d in orders[f][split] if d in common] for f in orders]
        assert sequences[0] == sequences[1] == sequences[2], split
    # llmbuilder: its texts come in the jsonl order
    text_of = {}
    for line in (b for f in out.glob("jsonl/*.jsonl") for b in f.read_bytes().splitlines()):
        row = orjson.loads(line)
        text_of[row["id"]] = row["text"]
    texts = read_ids(out, "llmbuilder")
    import re

    blank = re.compile(r"[^\S\n]*\n\s*\n")  # a paragraph break: one blank line
    for split, order in orders["jsonl"].items():
        expected = [blank.sub("\n\n", text_of[d].strip()) for d in order]
        expected = [t for t in expected if t]
        assert texts[split] == expected, split


def test_shuffled_run_leaves_no_spill_files(runs: dict[bool, Path]) -> None:
    assert not [p for p in runs[True].rglob("*") if p.name.startswith(".")]
