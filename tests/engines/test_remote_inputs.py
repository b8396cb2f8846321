"""Remote inputs on the local engine (moto's S3 server on 127.0.0.1): the manifest's
entries (the store's size and ETag, the sha256 of each range of a split file, never
fetched a third time for the whole file's), an object changed mid-run or between a
killed run and ``--resume``, the publish gate's checks of the entries, and the requests
small files and globs cost (one GET per file and pass, no metadata request per file)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
import qudata.driver as execute
from qudata.errors import IntegrityError
from qudata.export.inputs import input_problem

S3 = Any  # the fixture of conftest.py

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


def _rows(count: int, word: str = "stone") -> bytes:
    rows = [{"id": f"d{n}", "text": f"{word} {n} " + "river " * (n % 40)} for n in range(count)]
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def _config(s3: S3, size: int) -> dict[str, Any]:
    return {
        "engine": {"workers": 1, "partition_size": size},
        "storage": {"options": s3.options},
        "quality": {"tokenizer": "none"},
        "pack": {"formats": ["jsonl"]},
    }


def _inputs(out: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = orjson.loads((out / "manifest.json").read_bytes())["inputs"]
    return entries


def test_entries_give_size_and_etag_and_follow_a_rewrite(s3: S3, tmp_path: Path) -> None:
    fs = s3.fs()
    big, small = _rows(3000), _rows(40, "leaf")
    big_uri, small_uri = f"s3://{s3.bucket}/entry/big.jsonl", f"s3://{s3.bucket}/entry/small.jsonl"
    fs.pipe(big_uri, big)
    fs.pipe(small_uri, small)
    config = _config(s3, len(big) // 4)
    s3.reset()
    qudata.pack_dataset([big_uri, small_uri], tmp_path / "one", config=config)
    fetched, _ = s3.fetched()
    assert fetched <= 2 * len(big) + 2 * len(small) + 4 * 65536  # the two passes, the cuts
    first, second = _inputs(tmp_path / "one")
    assert first["path"] == big_uri and first["records"] == 3000
    assert (first["size"], first["etag"]) == (len(big), fs.info(big_uri)["ETag"])
    assert first["sha256"] is None and len(first["pieces"]) >= 4
    assert first["pieces"][0]["start"] == 0 and first["pieces"][-1]["end"] == len(big)
    for piece in first["pieces"]:
        expected = hashlib.sha256(big[piece["start"] : piece["end"]]).hexdigest()
        assert piece["sha256"] == expected
    assert second == {
        "path": small_uri,
        "sha256": hashlib.sha256(small).hexdigest(),
        "records": 40,
        "size": len(small),
        "etag": fs.info(small_uri)["ETag"],
    }
    secret = s3.options["s3"]["secret"].encode()
    assert all(secret not in p.read_bytes() for p in (tmp_path / "one").rglob("*") if p.is_file())
    card = (tmp_path / "one" / "README.md").read_text(encoding="utf-8")
    assert f"| `{big_uri}` | 3,000 | {len(first['pieces'])} ranges (`manifest.json`) |" in card

    other = small.replace(b"leaf 1 ", b"leaf Z ")  # the same size, other bytes
    assert len(other) == len(small) and other != small
    fs.pipe(small_uri, other)
    qudata.pack_dataset([big_uri, small_uri], tmp_path / "two", config=config)
    again, changed = _inputs(tmp_path / "two")
    assert again == first  # the same object: the same entry
    assert changed["size"] == second["size"]
    assert changed["etag"] != second["etag"] and changed["etag"] == fs.info(small_uri)["ETag"]
    assert changed["sha256"] == hashlib.sha256(other).hexdigest() != second["sha256"]


@pytest.mark.parametrize("where", ["split", "whole", "folder"])
@pytest.mark.parametrize("change", ["grown", "rewritten"])
def test_a_remote_file_changed_mid_run_fails(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, where: str
) -> None:
    """Grown after the scans: each file or range reads the bytes its listing gave in
    both passes, and the store's size at the end says it changed (a metadata request,
    or one listing of a folder of many inputs); rewritten: the write pass reads other
    bytes than the scan. One line, nothing published."""
    fs = s3.fs()
    data = _rows(2000)
    folder = f"s3://{s3.bucket}/changed-{change}-{where}"
    uri = f"{folder}/in.jsonl"
    fs.pipe(uri, data)
    if where == "folder":  # one listing checks them all
        for n in range(9):
            fs.pipe(f"{folder}/more{n}.jsonl", _rows(3, f"more{n}"))
    new = data + _rows(5, "late") if change == "grown" else data.replace(b"stone 7 ", b"stone Q ")
    original = execute._after_scans

    def after(job: Any, scans: Any) -> None:
        original(job, scans)
        fs.pipe(uri, new)
        s3.reset()  # then: the write pass, and the check of the inputs

    monkeypatch.setattr(execute, "_after_scans", after)
    out = tmp_path / "out"
    size = len(data) // 3 if where == "split" else 64 << 20
    with pytest.raises(IntegrityError) as caught:
        qudata.pack_dataset([uri if where != "folder" else folder], out, config=_config(s3, size))
    assert str(caught.value).endswith(
        f"{uri}: changed while the run read it; nothing was published"
    )
    assert not out.exists()
    if change == "grown":
        requests = s3.requests()
        listed = where == "folder"
        assert (requests["head"], requests["list"]) == (int(not listed), int(listed)), requests


def _piece(start: int, end: int, sha: str = "a" * 64) -> dict[str, Any]:
    return {"start": start, "end": end, "sha256": sha}


def test_the_gate_checks_the_input_entries() -> None:
    good = {"path": "s3://b/x.jsonl", "sha256": None, "records": 3, "size": 30, "etag": '"e"'}
    local = {"path": "x.jsonl", "sha256": "0" * 64, "records": 3}
    assert input_problem([local, {**good, "pieces": [_piece(0, 10), _piece(10, 30)]}]) is None
    assert input_problem([good]) is None
    cases = {
        "its pieces do not follow each other from byte 0 (at byte 10)": [
            _piece(0, 10),
            _piece(12, 30),
        ],
        "its pieces end at byte 20, its size is 30": [_piece(0, 10), _piece(10, 20)],
        "the piece at byte 10 has no sha256": [_piece(0, 10), _piece(10, 30, "nope")],
        "its pieces are not a list of byte ranges": [],
    }
    for problem, pieces in cases.items():
        assert input_problem([{**good, "pieces": pieces}]) == f"input s3://b/x.jsonl: {problem}"
    assert input_problem([{**local, "sha256": "xyz"}]) == "input x.jsonl: its sha256 is not one"
    assert input_problem([{**local, "records": -1}]) == "input x.jsonl: its records are not a count"
    assert input_problem([{"records": 1}]) == "an input entry without a path"


@pytest.mark.parametrize("workers", [1, 2])
def test_small_remote_files_cost_one_read_per_pass(s3: S3, tmp_path: Path, workers: int) -> None:
    """A folder of small text files: the listing gives every size and ETag, so each file
    costs one GET per pass and no metadata request of its own."""
    fs = s3.fs()
    for n in range(30):
        fs.pipe(f"s3://{s3.bucket}/small/d{n % 3}/n{n:02d}.txt", f"note {n} ".encode() * (n + 1))
    config = _config(s3, 4096)
    config["engine"]["workers"] = workers
    s3.reset()
    report = qudata.pack_dataset([f"s3://{s3.bucket}/small"], tmp_path / "out", config=config)
    assert report.read == 30
    assert s3.requests()["get"] == 60 and s3.requests()["head"] == 0


STUCK = """\
import functools, time
import qudata.stages.write as write
original = write.write_partition

@functools.wraps(original)
def write_partition(job, index):
    if index >= 3:
        time.sleep(600)
    return original(job, index)

write.write_partition = write_partition
"""


def _killed_run(tmp_path: Path, uri: str, out: Path, config: dict[str, Any]) -> None:
    """``qudata pack`` killed once three partitions are written (sitecustomize hook)."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(STUCK)
    path = tmp_path / "config.json"
    path.write_bytes(orjson.dumps(config))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*sys.path, str(site)]))
    command = [sys.executable, "-m", "qudata", "pack", uri, "-o", str(out), "-c", str(path)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    done: list[Path] = []
    while time.monotonic() < deadline and len(done) < 3:
        done = list(tmp_path.glob(f".{out.name}.qudata-partial-*/.parts/done/write-*.json"))
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(done) == 3, "the run did not get to three partitions"


@pytest.mark.parametrize("rewritten", [False, True])
def test_resume_of_a_split_remote_file(s3: S3, tmp_path: Path, rewritten: bool) -> None:
    """A killed run over a split remote file is taken up when the object is the same
    (its manifest entry, ranges and all, is an uninterrupted run's), and starts afresh
    when it was rewritten between the runs (the same size, another ETag)."""
    fs = s3.fs()
    data = _rows(2500)
    uri = f"s3://{s3.bucket}/resume/{rewritten}.jsonl"
    fs.pipe(uri, data)
    config = _config(s3, len(data) // 6)
    config["engine"]["workers"] = 2
    config["dedup"] = {"method": "none"}  # the dedup step consumes the scans' key files
    out = tmp_path / "out"
    _killed_run(tmp_path, uri, out, config)
    if rewritten:
        data = data.replace(b"stone 1 ", b"stone X ")
        fs.pipe(uri, data)
    assert qudata.pack_dataset([uri], out, config=config, resume=True).balanced()
    fresh = tmp_path / "fresh"
    qudata.pack_dataset([uri], fresh, config=config)
    a = {p.relative_to(fresh): p.read_bytes() for p in fresh.rglob("*") if p.is_file()}
    b = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    ma, mb = orjson.loads(a.pop(Path("manifest.json"))), orjson.loads(b.pop(Path("manifest.json")))
    assert a == b
    assert ma.pop("run")["resumed"] == 0
    assert (mb.pop("run")["resumed"] == 0) is rewritten
    assert ma == mb
    [entry] = mb["inputs"]
    assert entry["etag"] == fs.info(uri)["ETag"]
    for piece in entry["pieces"]:
        assert piece["sha256"] == hashlib.sha256(data[piece["start"] : piece["end"]]).hexdigest()


def test_a_glob_of_remote_files_costs_no_request_per_file(s3: S3, tmp_path: Path) -> None:
    """``s3://bucket/docs/*.jsonl``: the glob's listing gives every file's size and ETag;
    the driver asks nothing more per file, the workers one GET per pass."""
    fs = s3.fs()
    for n in range(20):
        fs.pipe(f"s3://{s3.bucket}/glob/part{n:02d}.jsonl", _rows(3, f"g{n}"))
    fs.pipe(f"s3://{s3.bucket}/glob/notes.txt", b"not matched\n")
    s3.reset()
    report = qudata.pack_dataset(
        [f"s3://{s3.bucket}/glob/*.jsonl"], tmp_path / "out", config=_config(s3, 64 << 20)
    )
    assert report.read == 60
    requests = s3.requests()
    assert requests["get"] == 40 and requests["head"] == 0, requests
    assert requests["list"] <= 4, requests  # the glob, and the check at the end
    paths = [entry["path"] for entry in _inputs(tmp_path / "out")]
    assert paths == [f"s3://{s3.bucket}/glob/part{n:02d}.jsonl" for n in range(20)]


def test_a_glob_that_matches_a_folder_walks_it(s3: S3) -> None:
    from qudata.engines.ray_inputs import expand_sources
    from qudata.io.uri import configure

    fs = s3.fs()
    base = f"s3://{s3.bucket}/globdir"
    for name in ("a.jsonl", "b/c.jsonl", "b/d/e.txt", "b/.hidden.jsonl", "f.csv"):
        fs.pipe(f"{base}/{name}", b'{"text": "x"}\n')
    configure(s3.options)
    try:
        sources = expand_sources([f"{base}/[ab]*"]).sources
    finally:
        configure({})
    assert [(s.path, s.name) for s in sources] == [
        (f"{base}/a.jsonl", f"{base}/a.jsonl"),
        (f"{base}/b/c.jsonl", f"{base}/b/c.jsonl"),
        (f"{base}/b/d/e.txt", "d/e.txt"),
    ]
