"""Issue 5 end to end: splits, shards, compression, shuffle, reproducibility, crash safety.

Most tests drive ``qudata pack`` through Click's ``CliRunner`` (with ``sys.argv`` set to what a
shell would give, since the dataset card records the command from it) or call
``qudata.pack_dataset`` directly; the SIGKILL test runs ``python -m qudata pack`` in a
subprocess. ``datasets`` runs offline with a temporary cache.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner, Result

import qudata
from qudata.cli import cli
from qudata.errors import ConfigError
from qudata.pack.jsonl import JSONLFormatter

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample.jsonl"
SRC = ROOT / "src"
MAIN_ARGS = [
    "--split",
    "train=0.8,validation=0.1,test=0.1",
    "--shard-records",
    "50",
    "--compression",
    "zstd",
    "-f",
    "chatml",
    "-f",
    "jsonl",
    "-f",
    "parquet",
]
SHARD_NAME = re.compile(
    r"^(?P<split>[A-Za-z0-9_-]+)-(?P<index>\d{5})-of-(?P<total>\d{5})(?P<ext>\..+)$"
)
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
FAST = {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}


# ---------------------------------------------------------------- helpers


def run_cli(args: list[str], *, cwd: Path | None = None, argv: bool = True) -> Result:
    """``qudata pack ARGS`` in-process; ``sys.argv`` as a shell would set it (``argv``)."""
    with pytest.MonkeyPatch.context() as mp:
        if argv:
            mp.setattr(sys, "argv", ["qudata", "pack", *args])
        if cwd is not None:
            mp.chdir(cwd)
        result = CliRunner().invoke(cli, ["pack", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def manifest(out: Path) -> dict[str, Any]:
    return orjson.loads((out / "manifest.json").read_bytes())


def decompress(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


LLM_SEPARATOR = "\n<|endoftext|>\n"  # after every document of -f llmbuilder


def records(out: Path, fmt: str) -> dict[str, list[Any]]:
    """Every record of ``fmt`` by split, in file order (files as listed in the manifest)."""
    by_split: dict[str, list[Any]] = defaultdict(list)
    for file in manifest(out)["formats"][fmt]["files"]:
        path = out / file["path"]
        if fmt == "parquet":
            import pyarrow.parquet as pq

            by_split[file["split"]].extend(pq.read_table(path).to_pylist())
        elif fmt in ("plain", "llmbuilder"):
            text = decompress(path).decode("utf-8")
            by_split[file["split"]].extend(
                text.split(LLM_SEPARATOR)[:-1] if fmt == "llmbuilder" else [text]
            )
        else:
            by_split[file["split"]].extend(orjson.loads(x) for x in decompress(path).splitlines())
    return dict(by_split)


def per_split(out: Path, fmt: str, key: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for file in manifest(out)["formats"][fmt]["files"]:
        counts[file["split"]] += file[key]
    return dict(counts)


def data_files(out: Path) -> Iterator[Path]:
    for fmt in manifest(out)["formats"].values():
        for file in fmt["files"]:
            yield out / file["path"]


def datasets_offline(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if hasattr(datasets.config, name):
            monkeypatch.setattr(datasets.config, name, True)
    return datasets


def sample_rows() -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in SAMPLE.read_bytes().splitlines()]


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


# ---------------------------------------------------------------- runs shared by tests


@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's command on examples/sample.jsonl (313 documents), from its own cwd."""
    work = tmp_path_factory.mktemp("main")
    (work / "examples").mkdir()
    shutil.copy(SAMPLE, work / "examples" / "sample.jsonl")
    run_cli(["examples/sample.jsonl", "-o", "out", *MAIN_ARGS, "-q"], cwd=work)
    return work / "out"


@pytest.fixture(scope="module")
def bytes_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shards by size (40 kB uncompressed), gzip, four text formats."""
    work = tmp_path_factory.mktemp("bytes")
    args = [str(SAMPLE), "-o", str(work / "out"), "-q", "--tokenizer", "none"]
    args += ["--split", "train=0.9,test=0.1", "--shard-size", "40KB", "--compression", "gzip"]
    args += ["-f", "chatml", "-f", "jsonl", "-f", "plain", "-f", "llmbuilder"]
    run_cli(args)
    return work / "out"


# ---------------------------------------------------------------- 1. layout, datasets, codecs


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    "config",
    [
        "chatml",
        "jsonl",
        "parquet",
    ],
)
def test_load_dataset_split_sizes_equal_manifest(
    main_run: Path, config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``load_dataset(out, "chatml")``, ``(out, "jsonl")``, ``(out + "/parquet")`` load every
    split, with as many rows as the manifest's files hold records (= documents here).

    With ``--shard-records 50`` the sample's one document carrying an unknown metadata key
    (``license``) lands in a later JSONL shard: the card declares the features, so
    ``datasets`` does not take them from the first file.
    """
    datasets = datasets_offline(monkeypatch)
    if config == "parquet":
        loaded = datasets.load_dataset(str(main_run / "parquet"), cache_dir=str(tmp_path))
    else:
        loaded = datasets.load_dataset(str(main_run), config, cache_dir=str(tmp_path))
    sizes = {split: len(rows) for split, rows in loaded.items()}
    assert per_split(main_run, config, "records") == per_split(main_run, config, "documents")
    assert sizes == per_split(main_run, config, "records")
    assert set(sizes) == {"train", "validation", "test"}


def test_main_run_account_and_shards(main_run: Path) -> None:
    data = manifest(main_run)
    assert data["counts"]["read"] == 313
    assert set(data["formats"]) == {"chatml", "jsonl", "parquet"}
    for name, fmt in data["formats"].items():
        ext = ".parquet" if name == "parquet" else ".jsonl.zst"
        by_split: dict[str, list[re.Match[str]]] = defaultdict(list)
        for file in fmt["files"]:
            folder, _, base = file["path"].partition("/")
            assert folder == name
            match = SHARD_NAME.match(base)
            assert match is not None, base
            assert match["split"] == file["split"] and match["ext"] == ext
            assert file["records"] <= 50
            by_split[file["split"]].append(match)
        for split, matches in by_split.items():
            total = len(matches)
            assert [int(m["index"]) for m in matches] == list(range(total)), split
            assert {int(m["total"]) for m in matches} == {total}, split
        assert sum(f["documents"] for f in fmt["files"]) == fmt["documents"]
    assert len([f for f in data["formats"]["jsonl"]["files"] if f["split"] == "train"]) >= 4


SEPARATORS = {"chatml": b"\n", "jsonl": b"\n", "plain": b"\n\n---\n\n"}


def test_shard_size_by_uncompressed_bytes(bytes_run: Path) -> None:
    """Each shard is cut once it reaches 40 kB of uncompressed bytes: never more than the
    limit plus one document, and every shard but a split's last one reaches the limit.
    LLMBuilder is given one path: one uncompressed file per split, never sharded."""
    limit = 40_000
    data = manifest(bytes_run)
    for name, fmt in data["formats"].items():
        if name == "llmbuilder":
            paths = [f["path"] for f in fmt["files"]]
            assert paths == ["llmbuilder/train.txt", "llmbuilder/test.txt"]
            continue
        by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for file in fmt["files"]:
            by_split[file["split"]].append(file)
        assert len(by_split["train"]) >= 3, name
        for split, files in by_split.items():
            for number, file in enumerate(files):
                path = bytes_run / file["path"]
                assert path.name == f"{split}-{number:05d}-of-{len(files):05d}" + (
                    ".txt.gz" if name == "plain" else ".jsonl.gz"
                )
                raw = decompress(path)
                biggest = max(len(x) for x in raw.split(SEPARATORS[name])) + 8
                assert len(raw) <= limit + biggest, (file["path"], len(raw))
                if number < len(files) - 1:
                    assert len(raw) >= limit, (file["path"], len(raw))


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_extensions_always_match_the_codec(codec: str, docs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    formats = ["chatml", "jsonl", "plain", "parquet", "llmbuilder"]
    qudata.pack_dataset(
        docs_file, out, formats=formats, config={**FAST, "output": {"compression": codec}}
    )
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".")]
    for path in data_files(out):
        head = path.read_bytes()[:4]
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            assert head == b"PAR1"
            column = pq.ParquetFile(path).metadata.row_group(0).column(0)
            expected = {"none": "UNCOMPRESSED", "gzip": "GZIP", "zstd": "ZSTD"}[codec]
            assert column.compression == expected
        elif path.parent.name == "llmbuilder":  # LLMBuilder reads .txt: never compressed
            assert path.suffix == ".txt" and head[:2] != GZIP_MAGIC and head != ZSTD_MAGIC
        elif codec == "gzip":
            assert path.name.endswith((".jsonl.gz", ".txt.gz")) and head[:2] == GZIP_MAGIC
        elif codec == "zstd":
            assert path.name.endswith((".jsonl.zst", ".txt.zst")) and head == ZSTD_MAGIC
        else:
            assert path.name.endswith((".jsonl", ".txt")), path
            assert head[:2] != GZIP_MAGIC and head != ZSTD_MAGIC
            path.read_bytes().decode("utf-8")
    if codec != "none":  # compressed files never are plain text
        for path in data_files(out):
            if path.suffix not in (".parquet", ".txt"):
                with pytest.raises(UnicodeDecodeError):
                    path.read_bytes().decode("utf-8")
    else:
        assert not [p for p in files if p.suffix in (".gz", ".zst")]


@pytest.mark.parametrize(
    ("fixture", "fmt", "pattern"),
    [
        ("main_run", "chatml", "chatml/*.jsonl.zst"),
        ("main_run", "jsonl", "jsonl/*.jsonl.zst"),
        ("main_run", "jsonl", "parquet/*.parquet"),
        ("bytes_run", "chatml", "chatml/*.jsonl.gz"),
        ("bytes_run", "plain", "plain/*.txt.gz"),
    ],
)
def test_validate_reads_compressed_and_parquet_outputs(
    fixture: str, fmt: str, pattern: str, request: pytest.FixtureRequest
) -> None:
    out: Path = request.getfixturevalue(fixture)
    files = sorted(str(p) for p in out.glob(pattern))
    assert files
    result = CliRunner().invoke(cli, ["validate", *files, "--format", fmt, "--json"])
    assert result.exit_code == 0, result.output[:2000]


# ---------------------------------------------------------------- 2. reproducible


REPRO_ARGS = [
    "--split",
    "train=0.8,validation=0.1,test=0.1",
    "--shuffle",
    "--shard-records",
    "60",
    "--compression",
    "gzip",
    "-f",
    "chatml",
    "-f",
    "jsonl",
    "-f",
    "plain",
    "-f",
    "parquet",
    "-f",
    "llmbuilder",
    "-q",
]


def test_two_runs_from_different_cwds_are_byte_identical(tmp_path: Path) -> None:
    """Same relative command in two folders (shuffle on): every file identical, including
    manifest.json, README.md, parquet/README.md, report.html and rejects.jsonl."""
    trees = []
    for name in ("a", "b"):
        work = tmp_path / name / "deeper" if name == "b" else tmp_path / name
        work.mkdir(parents=True)
        shutil.copy(SAMPLE, work / "in.jsonl")
        run_cli(["in.jsonl", "-o", "out", *REPRO_ARGS], cwd=work)
        trees.append(tree(work / "out"))
    assert trees[0].keys() == trees[1].keys()
    for key in ("manifest.json", "README.md", "report.html", "rejects.jsonl"):
        assert key in trees[0]
    assert "parquet/README.md" in trees[0]
    assert trees[0] == trees[1]
    for content in trees[0].values():
        assert str(tmp_path).encode() not in content


def test_output_dir_name_does_not_change_any_byte(tmp_path: Path) -> None:
    """Packing the same input into ``out_a`` and ``out_b`` gives the same bytes everywhere.

    The card records the command line, output folder included, so its bytes depend on where
    the dataset was written (and hold an absolute path when ``-o`` is absolute).
    """
    shutil.copy(SAMPLE, tmp_path / "in.jsonl")
    args = ["--tokenizer", "none", "-f", "jsonl", "--split", "train=0.9,test=0.1", "-q"]
    for name in ("out_a", "out_b"):
        run_cli(["in.jsonl", "-o", name, *args], cwd=tmp_path)
    a, b = tree(tmp_path / "out_a"), tree(tmp_path / "out_b")
    assert {k: v for k, v in a.items() if k != "README.md"} == {
        k: v for k, v in b.items() if k != "README.md"
    }
    assert a["README.md"].decode() == b["README.md"].decode()


def test_seed_changes_split_assignment_and_shuffle_order(tmp_path: Path) -> None:
    config = {
        **FAST,
        "pack": {"jsonl": {"fields": ["id", "text"]}},
        "output": {"split": {"train": 0.5, "test": 0.5}, "shuffle": True},
    }
    splits, orders = [], []
    for seed in (0, 1):
        out = tmp_path / f"seed{seed}"
        cfg = {**config, "output": {**config["output"], "seed": seed}}
        qudata.pack_dataset(SAMPLE, out, formats=["jsonl"], config=cfg)
        recs = records(out, "jsonl")
        splits.append({r["id"]: s for s, rows in recs.items() for r in rows})
        orders.append([r["id"] for r in recs["train"]])
    assert splits[0].keys() == splits[1].keys()
    moved = sum(splits[0][k] != splits[1][k] for k in splits[0])
    assert moved > len(splits[0]) // 4
    common = set(orders[0]) & set(orders[1])
    assert [i for i in orders[0] if i in common] != [i for i in orders[1] if i in common]


# ---------------------------------------------------------------- 3. crash safety


def _crash_after(monkeypatch: pytest.MonkeyPatch, cls: Any, method: str, n: int) -> None:
    original = getattr(cls, method)
    calls = {"n": 0}

    def boom(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > n:
            raise RuntimeError("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, boom)


def _final_shards_outside_staging(parent: Path) -> list[str]:
    found = []
    for path in parent.rglob("*"):
        if any(part.startswith(".") and "qudata-" in part for part in path.parts):
            continue
        if SHARD_NAME.match(path.name):
            found.append(str(path))
    return found


CRASH_POINTS = [
    ("qudata.pack.jsonl", "JSONLFormatter", "format_document", 150),
    ("qudata.io.shards", "ShardedWriter", "write_encoded", 120),
    ("qudata.io.parquet", "ParquetShardWriter", "write_rows", 100),
]


@pytest.mark.parametrize(("module", "cls", "method", "after"), CRASH_POINTS)
def test_crash_mid_run_leaves_no_dataset_and_keeps_an_old_one(
    module: str, cls: str, method: str, after: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    target = getattr(importlib.import_module(module), cls)
    config = {**FAST, "output": {"split": {"train": 0.8, "test": 0.2}, "shard_records": 30}}
    formats = ["jsonl", "chatml", "parquet"]
    parent = tmp_path / "parent"
    parent.mkdir()

    with monkeypatch.context() as mp:
        _crash_after(mp, target, method, after)
        with pytest.raises(RuntimeError, match="simulated crash"):
            qudata.pack_dataset(SAMPLE, parent / "out", formats=formats, config=config)
    assert list(parent.iterdir()) == []  # no output folder, no staging folder
    assert not list(tmp_path.rglob("manifest.json"))

    qudata.pack_dataset(SAMPLE, parent / "out", formats=formats, config=config, overwrite=True)
    complete = tree(parent / "out")
    with monkeypatch.context() as mp:
        _crash_after(mp, target, method, after)
        with pytest.raises(RuntimeError, match="simulated crash"):
            qudata.pack_dataset(
                SAMPLE, parent / "out", formats=formats, config=config, overwrite=True
            )
    assert [p.name for p in parent.iterdir()] == ["out"]
    assert tree(parent / "out") == complete
    old = str(parent / "out") + os.sep
    assert [p for p in _final_shards_outside_staging(parent) if not p.startswith(old)] == []

    qudata.pack_dataset(SAMPLE, parent / "out", formats=formats, config=config, overwrite=True)
    assert tree(parent / "out") == complete


def test_failure_while_moving_into_place_keeps_the_old_dataset(
    docs_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--overwrite`` replaces a dataset only once the new run completed: if moving the
    new folder into place fails, the old dataset must still be at OUT_DIR (today it is left
    under a hidden ``.out.qudata-old-PID`` name, which the next run then deletes)."""
    import qudata.pipeline as pipeline

    out = tmp_path / "out"
    qudata.pack_dataset(docs_file, out, config=FAST)
    complete = tree(out)
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(src).name.startswith(".out.qudata-partial-") and Path(dst) == out:
            raise OSError("simulated failure while publishing")
        real_replace(src, dst)

    monkeypatch.setattr(pipeline.os, "replace", replace)
    with pytest.raises(OSError, match="simulated failure"):
        qudata.pack_dataset(docs_file, out, config=FAST, overwrite=True)
    monkeypatch.undo()
    assert out.is_dir()
    assert tree(out) == complete


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dataset_killed_mid_publish_is_restored_not_deleted(
    docs_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishing is two renames: OUT_DIR -> ``.out.qudata-old-PID``, then staging -> OUT_DIR.
    A run killed between them leaves no OUT_DIR and the only complete dataset under the
    hidden ``-old-`` name. The next run's stale-folder sweep treats that folder like a
    staging leftover (dead PID) and deletes it; if that run then fails too, the dataset is
    gone. The sweep should put it back at OUT_DIR (when OUT_DIR is missing) instead."""
    out = tmp_path / "out"
    qudata.pack_dataset(docs_file, out, config=FAST)
    complete = tree(out)
    os.replace(out, tmp_path / f".out.qudata-old-{_dead_pid()}")  # the state after the kill

    _crash_after(monkeypatch, JSONLFormatter, "format_document", 0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        qudata.pack_dataset(docs_file, out, config=FAST, overwrite=True)
    survivors = [p for p in tmp_path.iterdir() if p.name == "out" or "qudata-old" in p.name]
    assert [tree(p) for p in survivors] == [complete], [p.name for p in tmp_path.iterdir()]
    assert out.is_dir()


def test_regenerating_with_overwrite_gives_the_same_bytes(tmp_path: Path) -> None:
    """The usual second run is ``qudata pack ... --overwrite`` into the same folder. The
    effective configuration in manifest.json includes ``output.overwrite`` (and its sha256
    changes), and the card's command line includes ``--overwrite``: a run option, not a
    property of the dataset, makes the regenerated dataset differ from the first one."""
    shutil.copy(SAMPLE, tmp_path / "in.jsonl")
    args = ["in.jsonl", "-o", "out", "--tokenizer", "none", "-f", "jsonl", "-q"]
    run_cli(args, cwd=tmp_path)
    first = tree(tmp_path / "out")
    run_cli([*args, "--overwrite"], cwd=tmp_path)
    second = tree(tmp_path / "out")
    assert {k for k in first if first[k] != second.get(k)} == set()


def _big_input(path: Path, documents: int = 10_000) -> Path:
    """About 22 MB of synthetic JSONL (330 random words per document)."""
    import random

    rng = random.Random(5)
    words = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(5000)
    ]
    with open(path, "wb") as out:
        for i in range(documents):
            text = " ".join(rng.choices(words, k=330))
            out.write(orjson.dumps({"id": f"d{i}", "text": text, "quality_score": 0.5}) + b"\n")
    return path


def _kill_mid_run(command: list[str], cwd: Path, env: dict[str, str]) -> list[str]:
    """Start ``command``, wait until its staging folder holds a file, then SIGKILL it ~0.05 s
    later; returns the staging folder's files at that point (relative names)."""
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            staging = [p for p in cwd.glob(".out.qudata-partial-*")]
            try:
                if staging and any(p.is_file() for p in staging[0].rglob("*")):
                    break
            except FileNotFoundError:
                pass
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        time.sleep(0.05)  # mid-run: on an idle machine the whole run takes about a second
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    folders = [p for p in cwd.iterdir() if p.name.startswith(".out.qudata-partial-")]
    paths = [*folders, *(p for folder in folders for p in folder.rglob("*"))]
    return sorted(p.relative_to(cwd).as_posix() for p in paths)


def test_sigkill_mid_run_leaves_only_a_hidden_staging_folder(tmp_path: Path) -> None:
    """A run killed with SIGKILL cannot clean up. What it leaves is one hidden folder beside
    the output, ``.out.qudata-partial-<pid>``, holding hidden shards being written
    (``jsonl/.train-00000.jsonl.shard``, their ``..partial-<pid>`` temporaries and
    ``.rejects.jsonl.partial-<pid>``): no ``out`` folder (or, under ``--overwrite``, the
    old complete dataset untouched), no manifest.json anywhere, no file with a final shard
    name outside the staging folder. The next run for the same output removes staging
    folders whose process is gone, and its result is byte-identical to an uninterrupted run.
    """
    work = tmp_path / "work"
    work.mkdir()
    big = _big_input(tmp_path / "big.jsonl")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-m", "qudata", "pack", str(big), "-o", "out", "-q", "--overwrite"]
    command += ["--tokenizer", "none", "--dedup", "none", "-f", "jsonl", "-f", "chatml"]
    command += ["--split", "train=0.9,test=0.1", "--shard-records", "1000"]

    left = _kill_mid_run(command, work, env)
    assert not (work / "out").exists()
    assert len([x for x in left if "/" not in x]) == 1, left
    assert not [x for x in left if x.endswith("manifest.json")]
    assert not list(tmp_path.rglob("manifest.json"))
    assert _final_shards_outside_staging(tmp_path) == []

    subprocess.run(command, cwd=work, env=env, check=True, capture_output=True)
    assert sorted(p.name for p in work.iterdir()) == ["out"]  # leftover staging removed
    complete = tree(work / "out")

    left = _kill_mid_run(command, work, env)
    assert left and not [x for x in left if x.endswith("manifest.json")]
    assert tree(work / "out") == complete  # the old complete dataset is intact
    old = str(work / "out") + os.sep
    assert [p for p in _final_shards_outside_staging(tmp_path) if not p.startswith(old)] == []

    subprocess.run(command, cwd=work, env=env, check=True, capture_output=True)
    assert sorted(p.name for p in work.iterdir()) == ["out"]
    assert tree(work / "out") == complete


# ---------------------------------------------------------------- 4. splits

SPLIT_CONFIG: dict[str, Any] = {
    "quality": {"tokenizer": "none"},
    "pack": {
        "chatml": {"max_tokens_per_message": None, "user_template": "{{ id }}"},
        "jsonl": {"fields": ["id", "text", "metadata"]},
    },
    "output": {"split": {"train": 0.5, "validation": 0.25, "test": 0.25}, "shard_records": 40},
}
SPLIT_FORMATS = ["chatml", "jsonl", "parquet", "llmbuilder"]
_BLANK = re.compile(r"[^\S\n]*\n\s*\n")  # a paragraph break: one blank line in llmbuilder


def ids_by_split(out: Path, fmt: str, text_to_ids: dict[str, set[str]]) -> dict[str, list[str]]:
    """Document ids of ``fmt`` by split (chatml: the user turn is ``{{ id }}``)."""
    result: dict[str, list[str]] = {}
    for split, rows in records(out, fmt).items():
        if fmt == "chatml":
            result[split] = [
                next(m["content"] for m in r["messages"] if m["role"] == "user") for r in rows
            ]
        elif fmt == "llmbuilder":
            result[split] = [i for text in rows for i in sorted(text_to_ids[text])]
        else:
            result[split] = [r["id"] for r in rows]
    return result


def llm_texts(out: Path) -> dict[str, set[str]]:
    mapping: dict[str, set[str]] = defaultdict(set)
    for rows in records(out, "jsonl").values():
        for row in rows:
            mapping[_BLANK.sub("\n\n", row["text"].strip())].add(row["id"])
    return mapping


@pytest.fixture(scope="module")
def planted(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[tuple[str, str]], list[tuple[str, str]]]:
    """The sample plus 20 exact copies (some only equal after normalisation: case,
    whitespace) and 20 near copies (one word changed), each under a new id."""
    rows = sample_rows()
    long_docs = [r for r in rows if len(r["text"].split()) > 150 and r["id"].startswith("library/")]
    seen: set[str] = set()
    unique = [r for r in long_docs if not (r["text"] in seen or seen.add(r["text"]))]
    extra, exact, near = [], [], []
    for i, row in enumerate(unique[:20]):
        text = row["text"] if i % 2 else "  " + row["text"].upper().replace(" ", "   ") + "\n"
        extra.append({**row, "id": f"copy/{i}", "text": text})
        exact.append((row["id"], f"copy/{i}"))
    for i, row in enumerate(unique[20:40]):
        words = row["text"].split(" ")
        words[len(words) // 2] = "CHANGED"
        extra.append({**row, "id": f"near/{i}", "text": " ".join(words)})
        near.append((row["id"], f"near/{i}"))
    path = write_rows(tmp_path_factory.mktemp("planted") / "planted.jsonl", rows + extra)
    return path, exact, near


@pytest.fixture(scope="module")
def dedup_none_run(planted: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dedup_none") / "out"
    config = {**SPLIT_CONFIG, "dedup": {"method": "none"}}
    qudata.pack_dataset(planted[0], out, formats=SPLIT_FORMATS, config=config)
    return out


def test_no_document_in_two_splits_in_any_format(dedup_none_run: Path) -> None:
    texts = llm_texts(dedup_none_run)
    for fmt in SPLIT_FORMATS:
        where: dict[str, set[str]] = defaultdict(set)
        for split, ids in ids_by_split(dedup_none_run, fmt, texts).items():
            for doc_id in ids:
                where[doc_id].add(split)
        assert {k: v for k, v in where.items() if len(v) > 1} == {}, fmt
        assert len(where) > 300


def test_same_document_same_split_in_every_format(dedup_none_run: Path) -> None:
    texts = llm_texts(dedup_none_run)
    maps = {}
    for fmt in SPLIT_FORMATS:
        maps[fmt] = {
            i: s for s, ids in ids_by_split(dedup_none_run, fmt, texts).items() for i in ids
        }
    common = set.intersection(*(set(m) for m in maps.values()))
    assert len(common) > 300
    for doc_id in common:
        assert len({m[doc_id] for m in maps.values()}) == 1, doc_id
    assert len({maps["jsonl"][i] for i in common}) == 3  # every split is used


def test_exact_duplicates_never_cross_splits(dedup_none_run: Path, planted: Any) -> None:
    _, exact, _ = planted
    where = {r["id"]: s for s, rows in records(dedup_none_run, "jsonl").items() for r in rows}
    for first, copy in exact:
        assert first in where and copy in where  # --dedup none keeps both
        assert where[first] == where[copy], (first, copy)
    assert len({where[a] for a, _ in exact}) >= 2  # the pairs themselves spread over splits


def test_near_duplicates_never_cross_splits_under_near(planted: Any, tmp_path: Path) -> None:
    path, _, near = planted
    out = tmp_path / "out"
    config = {**SPLIT_CONFIG, "dedup": {"method": "near"}}
    qudata.pack_dataset(path, out, formats=["jsonl", "parquet"], config=config)
    rejected = {
        r["id"]: r for r in map(orjson.loads, (out / "rejects.jsonl").read_bytes().splitlines())
    }
    for fmt in ("jsonl", "parquet"):
        where = {r["id"]: s for s, rows in records(out, fmt).items() for r in rows}
        for first, copy in near:
            assert len({where[i] for i in (first, copy) if i in where}) == 1, (fmt, first)
    caught = [c for _, c in near if rejected.get(c, {}).get("reason") == "duplicate_near"]
    assert len(caught) >= 18


def test_split_of_a_document_is_stable_when_documents_are_added(tmp_path: Path) -> None:
    rows = sample_rows()
    config = {**SPLIT_CONFIG, "dedup": {"method": "exact"}}
    small = write_rows(tmp_path / "small.jsonl", rows[::2])
    full = write_rows(tmp_path / "full.jsonl", rows)
    maps = []
    for name, path in (("a", small), ("b", full)):
        qudata.pack_dataset(path, tmp_path / name, formats=["jsonl"], config=config)
        maps.append({r["id"]: s for s, rs in records(tmp_path / name, "jsonl").items() for r in rs})
    assert all(maps[1][k] == v for k, v in maps[0].items())


def test_an_empty_split_writes_no_file_and_is_not_listed(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "Only document one."}, {"id": "b", "text": "Only document two."}]
    path = write_rows(tmp_path / "two.jsonl", rows)
    out = tmp_path / "out"
    config = {**FAST, "output": {"split": {"train": 0.34, "validation": 0.33, "test": 0.33}}}
    formats = ["chatml", "jsonl", "plain", "parquet", "llmbuilder"]
    qudata.pack_dataset(path, out, formats=formats, config=config, command="qudata pack")
    data = manifest(out)
    used = {f["split"] for f in data["formats"]["jsonl"]["files"]}
    empty = {"train", "validation", "test"} - used
    assert empty  # two documents, three splits
    for split in empty:
        assert not [p for p in out.rglob("*") if p.name.startswith(split)], split
        assert not (out / "llmbuilder" / f"{split}.txt").exists()
        for fmt in data["formats"].values():
            assert split not in {f["split"] for f in fmt["files"]}
        card = (out / "README.md").read_text()
        front = yaml.safe_load(card.split("---\n")[1])
        for config_entry in front["configs"]:
            assert split not in {d["split"] for d in config_entry["data_files"]}
        assert f"| {split} |" not in card
        parquet_card = yaml.safe_load((out / "parquet" / "README.md").read_text().split("---\n")[1])
        assert split not in {d["split"] for d in parquet_card["configs"][0]["data_files"]}


# ---------------------------------------------------------------- 9. add_metadata


def test_add_metadata_counts_exactly_and_is_off_by_default(
    docs_file: Path, tmp_path: Path, main_run: Path
) -> None:
    from qudata.quality.tokens import load_tiktoken_encoding

    encoding = load_tiktoken_encoding("cl100k_base")
    out = tmp_path / "out"
    config = {
        "output": {"add_metadata": ["chars", "words", "tokens"]},
        "pack": {"jsonl": {"fields": ["id", "text", "metadata"]}},
    }
    qudata.pack_dataset(docs_file, out, formats=["jsonl", "parquet"], config=config)
    rows = [r for rs in records(out, "jsonl").values() for r in rs]
    assert rows
    for row in rows:
        text = row["text"]
        meta = row["metadata"]
        assert meta["chars"] == len(text)
        assert meta["words"] == len(text.split())
        assert meta["tokens"] == len(encoding.encode_ordinary(text))
    for row in (r for rs in records(out, "parquet").values() for r in rs):
        extra = orjson.loads(row["metadata_json"])
        assert extra["tokens"] == len(encoding.encode_ordinary(row["text"]))
        assert extra["chars"] == len(row["text"])

    default = [r for rs in records(main_run, "jsonl").values() for r in rs]
    assert not [r for r in default if {"chars", "words", "tokens"} & set(r["metadata"])]
    parquet = [r for rs in records(main_run, "parquet").values() for r in rs]
    assert not [
        r for r in parquet if {"chars", "words", "tokens"} & set(orjson.loads(r["metadata_json"]))
    ]


# ---------------------------------------------------------------- 10. path safety


def test_nothing_is_written_beside_the_output_folder(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    config = {**FAST, "output": {"split": {"train": 0.8, "test": 0.2}, "shuffle": True}}
    formats = ["chatml", "jsonl", "plain", "parquet", "llmbuilder"]
    qudata.pack_dataset(SAMPLE, parent / "out", formats=formats, config=config)
    assert [p.name for p in parent.iterdir()] == ["out"]
    assert not [p for p in (parent / "out").rglob(".*")]  # no staging, shuffle or temp files


def test_output_folder_dot_is_packed_or_refused_cleanly(docs_file: Path, tmp_path: Path) -> None:
    """``-o .`` (pack into the current, empty folder): today the staging folder is created
    *inside* the output (``./..qudata-partial-PID``), the whole input is packed, and then
    publishing raises ``ValueError: PosixPath('.') has an empty name`` as a traceback."""
    work = tmp_path / "empty"
    work.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        result = CliRunner().invoke(
            cli, ["pack", str(docs_file), "-o", ".", "-q", "--tokenizer", "none"]
        )
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    assert result.exit_code in (0, 2), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    if result.exit_code == 0:
        assert (work / "manifest.json").is_file()
        assert not [p for p in work.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("name", ["a/b", "..", "../evil", ".hidden", "/abs", "sp ace", ""])
def test_unsafe_split_names_are_config_errors(name: str, docs_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        qudata.pack_dataset(
            docs_file,
            tmp_path / "out",
            config={**FAST, "output": {"split": {name: 0.5, "ok": 0.5}}},
        )
    assert list(tmp_path.iterdir()) == []


def test_formatter_crash_is_not_swallowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sanity check for the crash tests: the patched hook really runs during a pack."""
    _crash_after(monkeypatch, JSONLFormatter, "format_document", 0)
    with pytest.raises(RuntimeError):
        qudata.pack_dataset(SAMPLE, tmp_path / "out", formats=["jsonl"], config=FAST)
