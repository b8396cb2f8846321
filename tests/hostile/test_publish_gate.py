"""The publish gate reads back what would be published and refuses any file or count
that disagrees with the run's account; end to end, a forged resume record with a
matching hash cannot publish an account the files contradict."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.errors import IntegrityError
from qudata.export.verify import LocalFileSystem, manifest_of, verify_dataset

FORMATS = ["chatml", "jsonl", "plain", "parquet", "megatron", "llmbuilder", "packed"]
CONFIG: dict[str, Any] = {
    "pack": {"formats": FORMATS},
    "quality": {"tokenizer": "cl100k_base"},
    "output": {"split": {"train": 0.8, "test": 0.2}, "shard_records": 150},
}


def _input(path: Path) -> Path:
    rows: list[dict[str, Any]] = []
    for n in range(600):
        if n % 3 == 0:
            rows.append({"id": f"c{n}", "messages": [
                {"role": "user", "content": f"question {n} " + "w " * 20},
                {"role": "assistant", "content": f"answer {n} " + "x " * 30},
            ]})  # fmt: skip
        else:
            rows.append({"id": f"d{n}", "text": f"document {n} " + "word " * (10 + n % 50)})
    rows.append({"unknown": 1})
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gate")
    out = root / "out"
    qudata.pack_dataset(_input(root / "in.jsonl"), out, config=CONFIG)
    return out


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_every_format_passes_as_written(tmp_path: Path, compression: str) -> None:
    config = {**CONFIG, "output": {**CONFIG["output"], "compression": compression}}
    out = tmp_path / "out"
    qudata.pack_dataset(_input(tmp_path / "in.jsonl"), out, config=config)
    verify_dataset(LocalFileSystem(), str(out), manifest_of(LocalFileSystem(), str(out)))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _file(manifest: dict[str, Any], path: str) -> dict[str, Any]:
    for stats in manifest["formats"].values():
        for entry in stats["files"]:
            if entry["path"] == path:
                return entry  # type: ignore[no-any-return]
    raise KeyError(path)


def _refresh(manifest: dict[str, Any], root: Path, path: str) -> None:
    """The manifest made to agree with the file's bytes (as a forger would)."""
    entry = _file(manifest, path)
    entry["bytes"] = (root / path).stat().st_size
    entry["sha256"] = _sha(root / path)


def _drop_line(root: Path, manifest: dict[str, Any], path: str) -> None:
    lines = (root / path).read_bytes().splitlines(keepends=True)
    (root / path).write_bytes(b"".join(lines[:-1]))
    _refresh(manifest, root, path)


def _remove_folder(root: Path, manifest: dict[str, Any], path: str) -> None:
    shutil.rmtree(root / "jsonl")


def _forge_read(root: Path, manifest: dict[str, Any], path: str) -> None:
    manifest["counts"]["read"] += 1000
    manifest["inputs"][0]["records"] += 1000


def _forge_accepted(root: Path, manifest: dict[str, Any], path: str) -> None:
    manifest["counts"]["read"] += 10
    manifest["inputs"][0]["records"] += 10
    manifest["counts"]["accepted"] += 10
    for stats in manifest["formats"].values():
        stats["documents"] += 10


def _stray(root: Path, manifest: dict[str, Any], path: str) -> None:
    (root / "chatml" / "extra.jsonl").write_bytes(b"{}\n")


CASES: list[tuple[str, str, Callable[[Path, dict[str, Any], str], None], str]] = [
    ("missing", "chatml/train-00000-of-00004.jsonl", lambda r, m, p: (r / p).unlink(), "missing"),
    ("edited", "jsonl/train-00000-of-00004.jsonl",
     lambda r, m, p: (r / p).write_bytes((r / p).read_bytes().replace(b"word", b"w0rd", 1)),
     "sha256"),
    ("truncated", "plain/train-00000-of-00004.txt",
     lambda r, m, p: (r / p).write_bytes((r / p).read_bytes()[:-5]), "bytes"),
    ("a line fewer", "chatml/train-00000-of-00004.jsonl", _drop_line, "records"),
    ("a block fewer", "plain/test-00000-of-00001.txt",
     lambda r, m, p: _drop_block(r, m, p), "records"),
    ("a row fewer", "parquet/train-00000-of-00004.parquet", lambda r, m, p: _drop_row(r, m, p),
     "records"),
    ("idx and bin disagree", "megatron/train-00000-of-00004.bin",
     lambda r, m, p: _truncate_bin(r, m, p), "its .idx gives"),
    ("no jsonl folder", "jsonl/train-00000-of-00004.jsonl", _remove_folder, "jsonl"),
    ("no rejects", "rejects.jsonl", lambda r, m, p: (r / p).unlink(), "rejects.jsonl: missing"),
    ("a reject fewer", "rejects.jsonl",
     lambda r, m, p: (r / p).write_bytes(b"".join((r / p).read_bytes().splitlines(True)[1:])),
     "rejects"),
    ("read forged", "", _forge_read, "read"),
    ("documents forged", "", _forge_accepted, "documents"),
    ("a file not listed", "chatml/extra.jsonl", _stray, "does not list"),
]  # fmt: skip


def _truncate_bin(root: Path, manifest: dict[str, Any], path: str) -> None:
    (root / path).write_bytes((root / path).read_bytes()[:-2])
    _refresh(manifest, root, path)


def _drop_block(root: Path, manifest: dict[str, Any], path: str) -> None:
    data = (root / path).read_bytes()
    (root / path).write_bytes(data[: data.rindex(b"\n---\n")] + b"\n")
    _refresh(manifest, root, path)


def _drop_row(root: Path, manifest: dict[str, Any], path: str) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(root / path)
    pq.write_table(table.slice(0, table.num_rows - 1), root / path)
    _refresh(manifest, root, path)


@pytest.mark.parametrize(("case", "path", "change", "says"), CASES, ids=[c[0] for c in CASES])
def test_a_difference_is_refused_naming_the_file(
    dataset: Path, tmp_path: Path, case: str, path: str, change: Any, says: str
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    fs = LocalFileSystem()
    manifest = manifest_of(fs, str(root))
    verify_dataset(fs, str(root), manifest)
    change(root, manifest, path)
    with pytest.raises(IntegrityError) as caught:
        verify_dataset(fs, str(root), manifest)
    message = str(caught.value)
    assert says in message and "nothing was published" in message
    if path and case not in ("no jsonl folder",):
        assert message.startswith(path)
