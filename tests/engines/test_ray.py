"""The Ray engine writes what the local engine writes: the same files, byte for byte.

One local Ray instance (2 CPUs) serves the whole module. Each parity test packs the same
inputs with ``engine: local`` and ``engine: ray`` and compares every file; the manifests
differ only in ``config.engine`` (and so ``config_sha256``).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import xxhash
from click.testing import CliRunner

import qudata
from qudata.cli import cli
from qudata.errors import InputError, MissingExtraError

ray = pytest.importorskip("ray")

# Ray's internals warn about their own deprecated settings; nothing qudata can act on.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
    pytest.mark.filterwarnings("ignore::FutureWarning:ray.*"),
]

WORDS = [f"{stem}{n}" for stem in ("data", "token", "shard", "corpus") for n in range(10)]


@pytest.fixture(scope="module", autouse=True)
def ray_instance() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")}
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(
        num_cpus=2,
        object_store_memory=150 * 1024**2,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _text(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(n)]
    return " ".join(words) + "."


def _edit(text: str, rng: random.Random, changes: int) -> str:
    words = text.split(" ")
    for i in rng.sample(range(1, len(words) - 1), changes):
        words[i] = "edited" + str(rng.randrange(10_000))
    return " ".join(words)


def make_corpus(root: Path, seed: int = 7) -> list[Path]:
    """Three inputs (JSONL, gzipped JSONL, JSON array) with every case the pipeline
    distinguishes: exact and near duplicates (also across files, and a near chain),
    low and missing scores, derived ids repeated, conversations, bad records."""
    rng = random.Random(seed)
    rows: list[Any] = []
    originals = [_text(rng, 120) for _ in range(12)]
    for i in range(150):
        row: dict[str, Any] = {"id": f"a{i}", "text": _text(rng, rng.randrange(5, 90))}
        if i % 4:
            row["quality_score"] = round(rng.random(), 3)
        row["source"] = f"site{i % 5}.example"
        row["topics"] = [rng.choice(WORDS)]
        rows.append(row)
    for i, original in enumerate(originals):
        rows.insert(3 + 11 * i, {"id": f"orig{i}", "text": original, "quality_score": 0.9})
    chain_a = _text(rng, 300)
    chain_b = _edit(chain_a, rng, 5)
    chain_c = _edit(chain_b, rng, 5)
    rows[20:20] = [
        {"id": "chain-a", "text": chain_a, "quality_score": 0.95},
        {"id": "chain-b", "text": chain_b, "quality_score": 0.95},
        {"id": "chain-c", "text": chain_c, "quality_score": 0.95},
    ]
    rows += [
        {"text": "No id here, and a repeat.", "quality_score": 0.8},
        {"text": "No id here, and a repeat.", "quality_score": 0.8},
        {"id": "exact-copy", "text": originals[0].upper().replace(" ", "  "), "quality_score": 0.9},
        {"id": "near-copy", "text": _edit(originals[1], rng, 2), "quality_score": 0.9},
        {
            "id": "conv1",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is a shard?"},
                {"role": "assistant", "content": "One file of a split."},
            ],
        },
        {
            "id": "conv2",
            "messages": [
                {"role": "system", "content": "Be kind."},
                {"role": "user", "content": "What is a shard?"},
                {"role": "assistant", "content": "One file of a split."},
            ],
        },
        b"{not json",
        {"id": "no-text", "title": "nothing"},
        {"id": "bad-score", "text": "x", "quality_score": "high"},
    ]
    first = root / "a.jsonl"
    with open(first, "wb") as out:
        for row in rows:
            out.write((row if isinstance(row, bytes) else orjson.dumps(row)) + b"\n")
            if rng.random() < 0.05:
                out.write(b"\n")  # blank lines keep the line numbers honest
    second_rows = [
        {"id": f"b{i}", "text": _text(rng, rng.randrange(5, 60)), "quality_score": 0.75}
        for i in range(60)
    ]
    second_rows += [
        {"text": "No id here, and a repeat.", "quality_score": 0.8},
        {"id": "cross-exact", "text": originals[2], "quality_score": 0.9},
        {"id": "cross-near", "text": _edit(originals[3], rng, 2), "quality_score": 0.9},
        {"id": "low-dup", "text": originals[4], "quality_score": 0.1},
    ]
    second = root / "b.jsonl.gz"
    with gzip.open(second, "wb") as gz:
        gz.write(b"".join(orjson.dumps(r) + b"\n" for r in second_rows))
    third = root / "c.json"
    third_rows = [{"id": f"c{i}", "text": _text(rng, 40)} for i in range(20)]
    third_rows.append({"id": "cross-third", "text": chain_a})
    third.write_text(json.dumps(third_rows), encoding="utf-8")
    more = root / "more"  # a folder of small files: many blocks to keep in order
    more.mkdir()
    for n in range(8):
        texts = [_text(rng, 30) for _ in range(25)] + [originals[5], _edit(originals[6], rng, 1)]
        lines = [orjson.dumps({"text": t, "quality_score": 0.5}) + b"\n" for t in texts]
        (more / f"part{n}.jsonl").write_bytes(b"".join(lines))
    return [first, second, third, more]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def both(
    inputs: list[Any], tmp_path: Path, config: dict[str, Any]
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Pack with each engine; every file identical but the manifest, which differs only in
    its ``run`` section (the engine and its workers)."""
    outs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        engine_cfg = {**config.get("engine", {}), "name": engine}
        report = qudata.pack_dataset(inputs, out, config={**config, "engine": engine_cfg})
        assert report.balanced()
        outs[engine] = tree(out)
    local, distributed = outs["local"], outs["ray"]
    assert sorted(local) == sorted(distributed)
    differ = [name for name in local if local[name] != distributed[name]]
    assert differ == ["manifest.json"]
    m_local, m_ray = (orjson.loads(t["manifest.json"]) for t in (local, distributed))
    run_ray, run_local = m_ray.pop("run"), m_local.pop("run")
    assert run_ray["engine"] == "ray" and run_local["engine"] == "local"
    assert m_local == m_ray  # also the ``dedup`` section: parameters, cluster sizes
    method = config.get("dedup", {}).get("method", "exact")
    assert ("dedup" in m_local) == ("dedup" in run_ray) == (method != "none")
    if method != "none":
        assert m_local["dedup"]["method"] == method
        assert 'id="chart-clusters"' in local["report.html"].decode()
    return local, distributed


def counts(files: dict[str, bytes]) -> dict[str, Any]:
    return dict(orjson.loads(files["manifest.json"])["counts"])


def test_formats_quality_exact_dedup_and_splits(corpus: list[Path], tmp_path: Path) -> None:
    config = {
        "quality": {"min_quality_score": 0.3},
        "dedup": {"method": "exact"},
        "output": {
            "split": {"train": 0.6, "validation": 0.2, "test": 0.2},
            "add_metadata": ["chars", "tokens"],
        },
        "pack": {"chatml": {"include_metadata": True}, "jsonl": {"filter_low_quality": True}},
    }
    local, _ = both([str(p) for p in corpus], tmp_path, config)
    c = counts(local)
    assert c["read"] > 240
    assert {"invalid", "low_quality", "duplicate_exact"} <= set(c["dropped"])
    splits = {name.split("/")[1].split("-")[0] for name in local if name.startswith("chatml/")}
    assert splits == {"train", "validation", "test"}
    rejects = [orjson.loads(line) for line in local["rejects.jsonl"].splitlines()]
    by_id = {r["id"]: r for r in rejects if r["format"] is None}
    assert by_id["exact-copy"]["duplicate_of"] == "orig0"
    assert by_id["conv2"]["duplicate_of"] == "conv1"
    base = "doc-" + xxhash.xxh3_64_hexdigest(b"No id here, and a repeat.")
    derived = [
        (r["id"], r["duplicate_of"]) for r in by_id.values() if str(r["id"]).startswith(base)
    ]
    assert derived == [(base + "-2", base), (base + "-3", base)]


def test_near_dedup_shuffle_and_shards(corpus: list[Path], tmp_path: Path) -> None:
    config = {
        "quality": {"tokenizer": "none"},
        "pack": {"chatml": {"max_tokens_per_message": None}},
        "dedup": {"method": "near"},
        "output": {
            "split": {"train": 0.5, "validation": 0.25, "test": 0.25},
            "shuffle": True,
            "shard_records": 40,
        },
    }
    local, _ = both([str(p) for p in corpus], tmp_path, config)
    rejects = [orjson.loads(line) for line in local["rejects.jsonl"].splitlines()]
    near = {r["id"]: r["duplicate_of"] for r in rejects if r["reason"] == "duplicate_near"}
    assert near["near-copy"] == "orig1" and near["cross-near"] == "orig3"
    # the local rule: chain-c is near chain-b, which is not kept, and not near chain-a, so it
    # stays (one "component" a-b-c keeping only its first document would drop it)
    assert near["chain-b"] == "chain-a" and "chain-c" not in near
    exact = {r["id"]: r["duplicate_of"] for r in rejects if r["reason"] == "duplicate_exact"}
    assert exact["cross-third"] == "chain-a" and exact["low-dup"] == "orig4"
    assert any("-00001-of-" in name for name in local)


def test_no_dedup_scored_and_derived_ids(corpus: list[Path], tmp_path: Path) -> None:
    config = {
        "quality": {"tokenizer": "estimate", "missing_score": "score", "score_components": True},
        "pack": {"chatml": {"max_tokens_per_message": None}},
        "dedup": {"method": "none"},
        "output": {"split": {"train": 0.7, "validation": 0.2, "test": 0.1}, "seed": 3},
    }
    local, _ = both([str(p) for p in corpus], tmp_path, config)
    assert "quality_components" in local["jsonl/train-00000-of-00001.jsonl"].decode()


def test_parquet_text_folder_empty_file_and_nothing_kept(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    root = tmp_path / "in"
    (root / "notes" / "sub").mkdir(parents=True)
    (root / "notes" / "a.md").write_text("# Title A\n\nSome text about shards.\n")
    (root / "notes" / "sub" / "b.txt").write_text("ANOTHER note,  without a title.\n")
    (root / "notes" / "c.txt").write_text("Another note, without a title.\n")
    (root / "empty.jsonl").write_bytes(b"")
    rows = [{"id": f"p{i}", "text": f"parquet row {i % 3}", "quality_score": 0.5} for i in range(9)]
    pq.write_table(pa.Table.from_pylist(rows), root / "rows.parquet")
    inputs = [str(root / "empty.jsonl"), str(root / "rows.parquet"), str(root / "notes")]
    local, _ = both(inputs, tmp_path / "kept", {"dedup": {"method": "near"}})
    assert counts(local)["dropped"] == {"duplicate_exact": 7}  # 6 Parquet rows, sub/b.txt
    rejects = [orjson.loads(line) for line in local["rejects.jsonl"].splitlines()]
    assert rejects[-1]["id"] == "sub/b.txt" and rejects[-1]["duplicate_of"] == "c.txt"
    nothing = {"quality": {"missing_score": "drop", "min_quality_score": 0.9}}
    errors = []
    for engine in ("local", "ray"):  # no empty success: the same error, nothing published
        config = {**nothing, "dedup": {"method": "near"}, "engine": {"name": engine}}
        with pytest.raises(InputError, match="nothing was written") as info:
            qudata.pack_dataset(inputs, tmp_path / "none" / engine, config=config)
        errors.append(str(info.value))
        assert not (tmp_path / "none" / engine).exists()
    assert errors[0] == errors[1] and "missing_quality_score" in errors[0]


def test_every_input_shape(tmp_path: Path) -> None:
    """Tools, preference pairs, column mapping and shape drops: the same on Ray."""
    shapes = Path(__file__).parent.parent / "data" / "shapes"
    config = {
        "quality": {"tokenizer": "none"},
        "input": {"role_map": {"bing": "assistant"}},
        "pack": {
            "formats": ["chatml", "jsonl", "preference"],
            "chatml": {"max_tokens_per_message": None, "render": "chatml"},
        },
        "dedup": {"method": "near"},
    }
    local, _ = both([str(p) for p in sorted(shapes.glob("*.jsonl"))], tmp_path, config)
    assert {"unknown_shape", "bad_tools", "unsupported_content"} <= set(counts(local)["dropped"])
    assert b'"tools":[{"type":"function"' in local["chatml/train-00000-of-00001.jsonl"]
    assert b'"rejected"' in local["preference/train-00000-of-00001.jsonl"]


def test_unreadable_inputs_long_lines_and_skipped_entries(tmp_path: Path) -> None:
    """The account of hostile inputs is the local engine's: a truncated .gz, a FIFO and a
    link to /dev/zero (rejects, never opened), a line over the limit, a document over the
    limit, hidden and unsupported entries (skipped)."""
    import gzip
    import os

    root = tmp_path / "in"
    root.mkdir()
    rows = b"".join(
        orjson.dumps({"id": f"g{i}", "text": f"gzip row {i}"}) + b"\n" for i in range(400)
    )
    (root / "a.jsonl.gz").write_bytes(gzip.compress(rows, mtime=0)[:-200])
    (root / "b.jsonl").write_bytes(
        b'{"text": "short"}\n{"text": "' + b"x" * 3000 + b'"}\n{"text": "' + b"y" * 300 + b'"}\n'
    )
    os.mkfifo(root / "c.jsonl")
    (root / "d.txt").symlink_to("/dev/zero")
    (root / ".hidden.jsonl").write_bytes(b'{"text": "hidden"}\n')
    (root / "e.csv").write_text("a,b\n")
    config = {"input": {"max_line_bytes": "2KB", "max_document_chars": 200}}
    local, _ = both([str(root)], tmp_path, config)
    data = counts(local)
    assert data["dropped"] == {
        "document_too_long": 1,
        "line_too_long": 1,
        "not_a_regular_file": 2,
        "truncated_input": 1,
    }
    assert data["skipped"] == {"hidden": 1, "unsupported_type": 1}


def test_on_error_fail_raises_the_same_error(corpus: list[Path], tmp_path: Path) -> None:
    errors = []
    for engine in ("local", "ray"):
        config = {"input": {"on_error": "fail"}, "engine": {"name": engine}}
        with pytest.raises(InputError) as info:
            qudata.pack_dataset([str(p) for p in corpus], tmp_path / engine, config=config)
        errors.append(str(info.value))
        assert not (tmp_path / engine).exists()
    assert errors[0] == errors[1] and ":" in errors[0]


def test_uri_inputs_and_the_command_line(corpus: list[Path], tmp_path: Path) -> None:
    """``file://`` URIs go through fsspec (as ``s3://`` would); the CLI's ``--engine ray``."""
    args = ["-f", "jsonl", "--tokenizer", "none", "--dedup", "near", "-q"]
    result = CliRunner().invoke(
        cli, ["pack", *map(str, corpus), "-o", str(tmp_path / "cli"), *args]
    )
    assert result.exit_code == 0, result.output
    uris = [p.as_uri() for p in corpus]
    result = CliRunner().invoke(
        cli, ["pack", *uris, "-o", str(tmp_path / "uri"), "--engine", "ray", *args]
    )
    assert result.exit_code == 0, result.output
    local, remote = tree(tmp_path / "cli"), tree(tmp_path / "uri")
    assert local["jsonl/train-00000-of-00001.jsonl"] == remote["jsonl/train-00000-of-00001.jsonl"]
    inputs = orjson.loads(remote["manifest.json"])["inputs"]
    assert [i["path"] for i in inputs[:3]] == uris[:3]
    assert inputs[3]["path"] == uris[3] + "/part0.jsonl"
    assert [(i["sha256"], i["records"]) for i in inputs] == [
        (i["sha256"], i["records"]) for i in orjson.loads(local["manifest.json"])["inputs"]
    ]


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from qudata.engines import ray as engine

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"qudata\[ray\]"):
        engine._import_ray()


def test_qudata_imports_no_ray() -> None:
    code = "import sys, qudata, qudata.pack, qudata.pipeline; print('ray' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False", out.stderr


def test_checks_run_before_dedup_on_ray_too(tmp_path: Path) -> None:
    """A contaminated conversation is dropped before dedup: its duplicate (the same user
    and assistant turns, another system turn) is kept on both engines."""
    bench = tmp_path / "bench.jsonl"
    words = "the quick brown fox jumps over the lazy dog near the river bank today"
    bench.write_bytes(orjson.dumps({"task_id": "B/0", "prompt": words}) + b"\n")
    turns = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}]
    rows = [
        {"id": "tainted", "messages": [{"role": "system", "content": words}, *turns]},
        {"id": "clean", "messages": [{"role": "system", "content": "Be brief."}, *turns]},
        {"id": "other", "text": "An unrelated document about mountains and lakes."},
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = {"quality": {"decontamination": {"files": [str(bench)], "ngram": 8}}}
    local, _ = both([str(source)], tmp_path, config)
    c = counts(local)
    assert c["dropped"] == {"contaminated": 1} and c["accepted"] == 2


def test_mix_on_ray_matches_the_local_engine(tmp_path: Path) -> None:
    rng = random.Random(4)
    paths = []
    for name, docs, words in (("web", 60, 12), ("code", 40, 40)):
        rows = [{"id": f"{name}{n}", "text": _text(rng, words)} for n in range(docs)]
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        paths.append(str(path))
    config = {
        "mix": {"sources": [{"path": paths[0], "weight": 0.6}, {"path": paths[1], "weight": 0.4}],
                "target_tokens": 3000, "seed": 2},
        "output": {"split": {"train": 0.8, "validation": 0.2}},
    }  # fmt: skip
    local, _ = both([], tmp_path, config)
    mix = orjson.loads(local["manifest.json"])["mix"]
    assert mix["sources"][0]["repeated"] > 0 or mix["sources"][1]["downsampled"] > 0


def test_byte_range_partitions_on_ray(corpus: list[Path], tmp_path: Path) -> None:
    config = {
        "dedup": {"method": "exact"},
        "output": {"split": {"train": 0.5, "test": 0.5}, "shard_records": 7},
        "engine": {"partition_size": 2048},
    }
    local, _ = both(corpus, tmp_path, config)
    manifest = orjson.loads(local["manifest.json"])
    assert manifest["counts"]["dropped"].get("duplicate_exact", 0) > 0


def _mix_config(tmp_path: Path) -> dict[str, Any]:
    rng = random.Random(4)
    paths = []
    for name, docs, words in (("web", 60, 12), ("code", 40, 40)):
        rows = [{"id": f"{name}{n}", "text": _text(rng, words)} for n in range(docs)]
        rows.append(dict(rows[3], id=f"{name}-copy"))  # a duplicate: the survey reads verdicts
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        paths.append(str(path))
    return {
        "mix": {"sources": [{"path": paths[0], "weight": 0.6}, {"path": paths[1], "weight": 0.4}],
                "target_tokens": 3000, "seed": 2},
        "engine": {"partition_size": 1024},
    }  # fmt: skip


@pytest.mark.parametrize("case", ["near", "mix"])
def test_staging_on_object_storage(corpus: list[Path], tmp_path: Path, case: str) -> None:
    """``storage.staging`` an fsspec URI: every task works in a scratch folder of its own,
    fetching what it reads from the prefix and uploading what it writes; the dataset is
    the local engine's, and the prefix is gone at the end."""
    remote = tmp_path / "remote"
    config: dict[str, Any] = {
        "dedup": {"method": "near"},
        "output": {"split": {"train": 0.5, "test": 0.5}, "shuffle": True, "shard_records": 9},
        "engine": {"partition_size": 2048},
    }
    inputs: list[Any] = list(corpus)
    if case == "mix":
        config, inputs = {"dedup": {"method": "exact"}, **_mix_config(tmp_path)}, []
    config["storage"] = {"staging": remote.as_uri()}
    local, distributed = both(inputs, tmp_path, config)
    assert orjson.loads(local["manifest.json"])["counts"]["dropped"].get("duplicate_exact")
    staging = orjson.loads(distributed["manifest.json"])["run"]["staging"]
    assert staging["uri"].startswith(remote.as_uri() + "/qudata-")
    data = sum(len(body) for name, body in local.items() if name != "manifest.json")
    assert 0 < staging["pulled"] <= data  # the committed files, downloaded once
    assert staging["uploaded"] > staging["pulled"] and staging["fetched"] > 0
    assert not remote.exists() or list(remote.rglob("*")) == []


def test_stats_on_ray_with_staging_on_object_storage(
    corpus: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``qudata stats`` runs pack's driver: on Ray with ``storage.staging`` an fsspec URI
    its tasks stage through the prefix too, and the figures are the local engine's."""
    from qudata.engines import ray_staging
    from qudata.stats import collect_stats

    prefixes: list[str] = []
    made = ray_staging.Mirror.__init__

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        prefixes.append(self.prefix)

    monkeypatch.setattr(ray_staging.Mirror, "__init__", spy)

    config: dict[str, Any] = {"dedup": {"method": "near"}, "engine": {"partition_size": 2048}}
    local = collect_stats(corpus, config=config).as_dict()
    remote = tmp_path / "remote"
    ray_config = {
        **config,
        "engine": {"name": "ray", "partition_size": 2048},
        "storage": {"staging": remote.as_uri()},
    }
    assert collect_stats(corpus, config=ray_config).as_dict() == local
    assert len(prefixes) == 1 and prefixes[0].startswith(remote.as_uri() + "/qudata-")
    assert local["duplicates"]  # the tally read the dedup step's verdicts
    assert not remote.exists() or list(remote.rglob("*")) == []
