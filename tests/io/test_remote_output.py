"""``-o`` as an fsspec URI without a server: ``file://`` and ``memory://`` (moto's S3:
``tests/engines/test_object_output.py``)."""

from __future__ import annotations

from pathlib import Path

import fsspec
import orjson
import pytest

import qudata
from qudata.errors import OutputError


def corpus(path: Path) -> Path:
    rows = [
        orjson.dumps({"id": f"d{n}", "text": f"document {n} " * (n % 7 + 1)}) for n in range(60)
    ]
    path.write_bytes(b"\n".join([*rows, b"{broken", rows[3]]) + b"\n")
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_file_uri_writes_what_a_local_folder_gets(tmp_path: Path) -> None:
    source = corpus(tmp_path / "in.jsonl")
    staging = {"storage": {"staging": str(tmp_path / "stage")}}
    qudata.pack_dataset([source], tmp_path / "local", formats=["chatml", "jsonl"])
    uri = f"file://{tmp_path}/remote"
    qudata.pack_dataset([source], uri, formats=["chatml", "jsonl"], config=staging)
    assert tree(tmp_path / "remote") == tree(tmp_path / "local")  # one engine: the same run
    with pytest.raises(OutputError, match="prefix is not empty"):
        qudata.pack_dataset([source], uri, formats=["chatml"], config=staging)
    qudata.pack_dataset([source], uri, formats=["chatml"], config=staging, overwrite=True)
    qudata.pack_dataset([source], tmp_path / "local", formats=["chatml"], overwrite=True)
    assert tree(tmp_path / "remote") == tree(tmp_path / "local")
    assert not (tmp_path / "remote" / "jsonl").exists()  # no empty folder left behind
    assert list((tmp_path / "stage").iterdir()) == []
    with pytest.raises(OutputError, match="the output folder contains an input"):
        qudata.pack_dataset([source], f"file://{tmp_path}", config=staging, overwrite=True)


def test_a_memory_uri(tmp_path: Path) -> None:
    source = corpus(tmp_path / "in.jsonl")
    qudata.pack_dataset([source], tmp_path / "local", formats=["plain"])
    config = {"storage": {"staging": str(tmp_path / "stage")}}
    report = qudata.pack_dataset([source], "memory://qudata-test/out", formats=["plain"],
                                 config=config)  # fmt: skip
    assert report.output_dir == "memory://qudata-test/out"
    fs = fsspec.filesystem("memory")
    try:
        stored = {k.split("/out/", 1)[1]: fs.cat_file(k) for k in fs.find("/qudata-test/out")}
        assert stored == tree(tmp_path / "local")
    finally:
        fs.rm("/qudata-test", recursive=True)
