"""The publish gate reads the files back side by side, and says what differs in the
manifest's order whatever finishes first."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.export import verify
from qudata.export.verify import LocalFileSystem, differences, manifest_of


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    source = tmp_path / "in.jsonl"
    rows = [{"id": f"d{n}", "text": f"Document {n}. " + "words " * (n % 9)} for n in range(40)]
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = tmp_path / "out"
    config = {"quality": {"tokenizer": "none"}, "output": {"shard_records": 10}}
    qudata.pack_dataset(source, out, formats=["jsonl", "plain"], config=config)
    return out


def test_files_are_read_back_side_by_side_and_reported_in_order(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = LocalFileSystem()
    manifest = manifest_of(fs, str(dataset))
    paths = [e["path"] for s in manifest["formats"].values() for e in s["files"]]
    assert len(paths) == 8
    for path in (paths[0], paths[-1]):  # the first and the last file the manifest lists
        (dataset / path).write_bytes((dataset / path).read_bytes() + b"\n")
    second_started = threading.Event()
    check = verify.check_file

    def slow_first(fs: Any, root: str, fmt: str, entry: dict[str, Any], options: Any) -> None:
        if entry["path"] == paths[1]:
            second_started.set()
        if entry["path"] == paths[0]:  # still reading when the others are checked
            assert second_started.wait(10), "the files were read back one after another"
        check(fs, root, fmt, entry, options)

    monkeypatch.setattr(verify, "check_file", slow_first)
    monkeypatch.setattr(verify, "usable_cpus", lambda: 2)
    found = [m.path for m in differences(fs, str(dataset), manifest)]
    assert found == [paths[0], paths[-1]]
    assert second_started.is_set()


def test_the_gate_stops_at_its_first_difference(dataset: Path) -> None:
    fs = LocalFileSystem()
    manifest = manifest_of(fs, str(dataset))
    first = manifest["formats"]["jsonl"]["files"][0]["path"]
    (dataset / first).write_bytes(b"")
    with pytest.raises(qudata.errors.IntegrityError, match=f"{first}: 0 bytes"):
        verify.verify_dataset(fs, str(dataset), manifest)
    assert not [t for t in threading.enumerate() if t.name.startswith("qudata-gate")]
