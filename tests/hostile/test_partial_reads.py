"""Nothing read silently in part: JSON top levels, truncated and corrupt compressed and
Parquet inputs, entries of a folder that are not regular files or not readable."""

from __future__ import annotations

import gzip
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import zstandard

import qudata
from qudata.errors import InputError

from .conftest import (
    FAST,
    FAST_ARGS,
    balanced,
    good_input,
    manifest,
    one_error_line,
    qudata_cli,
    qudata_process,
    rejects,
)

N = 3000


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


# --- .json top levels ---


def test_a_json_object_is_one_document(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_bytes(orjson.dumps({"id": "x", "text": "The only document."}))
    report = qudata.pack_dataset(path, tmp_path / "out", config=FAST)
    assert (report.read, report.accepted) == (1, 1)


@pytest.mark.parametrize("body", [b"42", b'"text"', b"null", b"", b"  \n "])
def test_a_json_scalar_or_empty_file_is_a_reject(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(body)
    report = qudata.pack_dataset([path, good_input(tmp_path)], tmp_path / "out", config=FAST)
    assert (report.read, report.dropped["invalid"]) == (2, 1)
    (reject,) = rejects(tmp_path / "out")
    assert "expected a JSON array of objects or one object" in reject["detail"]


# --- truncated and corrupt compressed inputs ---


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


CASES = [
    ("in.jsonl.gz", _gzip, _cut, "gzip"),
    ("in.jsonl.gz", _gzip, _flip, "gzip"),
    ("in.jsonl.zst", _zstd, _cut, "zstd"),
    ("in.json.gz", _gzip, _cut, "gzip"),
    ("in.json.zst", _zstd, _cut, "zstd"),
]


def _documents(n: int = N, *, array: bool = False) -> bytes:
    rows = [{"id": f"d{i}", "text": f"Document {i} " + "word " * (i % 7)} for i in range(n)]
    if array:
        return orjson.dumps(rows)
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


@pytest.mark.parametrize(("name", "encode", "damage", "codec"), CASES)
def test_a_damaged_compressed_input_is_one_error_line_under_fail(
    tmp_path: Path,
    name: str,
    encode: Callable[[bytes], bytes],
    damage: Callable[[bytes], bytes],
    codec: str,
) -> None:
    data = damage(encode(_documents(array=".json." in name)))
    (tmp_path / name).write_bytes(data)
    result = qudata_cli("pack", name, "-o", "out", "--on-error", "fail", *FAST_ARGS, cwd=tmp_path)
    assert result.exit_code == 1, result.output
    line = one_error_line(result.output)
    if damage is _flip:  # deflate may first decode the damage into a bad line
        assert line.startswith(f"Error: {name}")
    else:
        assert line.startswith(f"Error: {name}: truncated or corrupt {codec} data at byte ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("name", "encode", "damage", "codec"), CASES)
def test_a_damaged_compressed_input_is_a_truncated_input_reject_under_skip(
    tmp_path: Path,
    jsonl: Callable[..., Path],
    name: str,
    encode: Callable[[bytes], bytes],
    damage: Callable[[bytes], bytes],
    codec: str,
) -> None:
    (tmp_path / name).write_bytes(damage(encode(_documents(array=".json." in name))))
    jsonl(tmp_path / "z.jsonl", 10)  # the run goes on with the next input
    report = qudata.pack_dataset(
        [tmp_path / name, tmp_path / "z.jsonl"], tmp_path / "out", config=FAST
    )
    data = manifest(tmp_path / "out")
    assert balanced(data)
    reasons = set(data["counts"]["dropped"])
    assert reasons & {"truncated_input", "invalid"}, reasons
    damaged = [r for r in rejects(tmp_path / "out") if r["line"] is None]
    assert len(damaged) == 1 and damaged[0]["source"] == str(tmp_path / name)
    assert "byte " in damaged[0]["detail"]
    if damage is _cut:
        assert report.read < N + 10  # not all of the damaged input was read...
    assert data["inputs"][0]["sha256"] is None  # ...and the manifest says so
    assert data["inputs"][1]["records"] == 10


def test_every_zstd_frame_is_read(tmp_path: Path) -> None:
    """``zstd`` and ``pzstd`` may write several frames: all of them are the file."""
    first, second = _documents(100), _documents(200)[len(_documents(100)) :]
    (tmp_path / "in.jsonl.zst").write_bytes(_zstd(first) + _zstd(second))
    report = qudata.pack_dataset(tmp_path / "in.jsonl.zst", tmp_path / "out", config=FAST)
    assert report.read == 200


def test_a_truncated_gzip_never_prints_aborted(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl.gz").write_bytes(_cut(_gzip(_documents())))
    done = qudata_process(
        "pack", "in.jsonl.gz", "-o", "out", "--on-error", "fail", *FAST_ARGS, cwd=tmp_path
    )
    assert done.returncode == 1
    line = one_error_line(done.stderr.decode())
    assert "in.jsonl.gz" in line and "truncated or corrupt gzip data at byte" in line


# --- Parquet ---


def _parquet_bytes(tmp_path: Path) -> bytes:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"id": [f"d{i}" for i in range(N)], "text": [f"Doc {i}" for i in range(N)]})
    pq.write_table(table, tmp_path / "whole.parquet", row_group_size=500)
    data = (tmp_path / "whole.parquet").read_bytes()
    (tmp_path / "whole.parquet").unlink()
    return data


@pytest.mark.parametrize("damage", ["cut", "not_parquet", "cut_footer"])
def test_a_damaged_parquet_input(tmp_path: Path, damage: str) -> None:
    data = _parquet_bytes(tmp_path)
    if damage == "cut":
        data = data[: len(data) // 2]
    elif damage == "cut_footer":
        data = data[:-10]
    else:
        data = b"this is not a parquet file"
    (tmp_path / "in.parquet").write_bytes(data)
    result = qudata_cli(
        "pack", "in.parquet", "-o", "out", "--on-error", "fail", *FAST_ARGS, cwd=tmp_path
    )
    assert result.exit_code == 1
    line = one_error_line(result.output)
    assert "in.parquet" in line and "byte " in line
    inputs = [tmp_path / "in.parquet", good_input(tmp_path)]
    report = qudata.pack_dataset(inputs, tmp_path / "skip", config=FAST)
    assert report.dropped["truncated_input"] == 1 and report.balanced()


def test_parquet_timestamps_and_decimals_are_read(tmp_path: Path) -> None:
    import datetime
    import decimal

    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "text": ["a", "b"],
            "when": [datetime.datetime(2024, 5, 1, 12, 30), None],
            "price": pa.array([decimal.Decimal("1.50"), None], pa.decimal128(5, 2)),
            "blob": [b"utf-8 text", b"\xff\xfe"],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    report = qudata.pack_dataset(
        tmp_path / "t.parquet", tmp_path / "out", config=FAST, formats=["jsonl"]
    )
    assert (report.accepted, report.dropped["invalid"]) == (1, 1)
    (row,) = [
        orjson.loads(x)
        for x in (tmp_path / "out/jsonl").glob("*.jsonl")
        for x in x.read_bytes().splitlines()
    ]
    assert row["metadata"]["when"] == "2024-05-01T12:30:00"
    assert row["metadata"]["price"] == "1.50"


# --- entries of a folder that are not regular files ---


@pytest.fixture
def special_folder(tmp_path: Path, jsonl: Callable[..., Path]) -> Iterator[Path]:
    """A folder with a FIFO, a socket, a link to /dev/zero, a broken link and one good file."""
    folder = tmp_path / "in"
    jsonl(folder / "good.jsonl", 5)
    os.mkfifo(folder / "fifo.jsonl")
    (folder / "zero.txt").symlink_to("/dev/zero")
    (folder / "gone.jsonl").symlink_to(folder / "nothing-here")
    # a socket path must be short: bind it in a short temporary folder and link to it
    short = Path(tempfile.mkdtemp(prefix="qs"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(short / "s"))
    os.replace(short / "s", folder / "sock.jsonl")
    try:
        yield folder
    finally:
        sock.close()
        short.rmdir()


def test_fifos_devices_sockets_and_broken_links_are_rejects_never_opened(
    tmp_path: Path, special_folder: Path
) -> None:
    """In a child with a time limit: a FIFO opened for reading would hang, /dev/zero
    would never end."""
    done = qudata_process("pack", "in", "-o", "out", *FAST_ARGS, cwd=tmp_path, timeout=20)
    assert done.returncode == 0, done.stderr
    data = manifest(tmp_path / "out")
    assert data["counts"]["dropped"] == {"not_a_regular_file": 4}
    assert data["counts"]["accepted"] == 5 and balanced(data)
    details = {Path(r["source"]).name: r["detail"] for r in rejects(tmp_path / "out")}
    assert details == {
        "fifo.jsonl": "a FIFO: not read",
        "gone.jsonl": "a broken symbolic link",
        "sock.jsonl": "a socket: not read",
        "zero.txt": "a character device: not read",
    }


def test_a_named_fifo_is_not_opened_either(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "named.jsonl")
    inputs = [tmp_path / "named.jsonl", good_input(tmp_path)]
    report = qudata.pack_dataset(inputs, tmp_path / "out", config=FAST)
    assert report.dropped == {"not_a_regular_file": 1}


def test_special_entries_stop_the_run_under_fail(tmp_path: Path, special_folder: Path) -> None:
    with pytest.raises(InputError, match="not read") as info:
        qudata.pack_dataset(
            special_folder, tmp_path / "out", config={**FAST, "input": {"on_error": "fail"}}
        )
    assert info.value.exit_code == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux capabilities")
def test_unreadable_files_and_folders_are_permission_denied_rejects(
    tmp_path: Path, jsonl: Callable[..., Path]
) -> None:
    """As root every permission check passes: the run is made by a child that dropped the
    capabilities that let root read anything, so a mode-000 file or folder is unreadable."""
    folder = tmp_path / "in"
    jsonl(folder / "a.jsonl", 3)
    jsonl(folder / "secret.jsonl", 3).chmod(0)
    jsonl(folder / "locked" / "b.jsonl", 3)
    (folder / "locked").chmod(0)
    try:
        done = qudata_process(
            "pack", "in", "-o", "out", *FAST_ARGS, cwd=tmp_path, obey_permissions=True
        )
        assert done.returncode == 0, done.stderr
        data = manifest(tmp_path / "out")
        assert data["counts"]["dropped"] == {"permission_denied": 2}
        assert data["counts"]["accepted"] == 3
        details = {Path(r["source"]).name: r["detail"] for r in rejects(tmp_path / "out")}
        assert details == {
            "locked": "permission denied: not read",
            "secret.jsonl": "permission denied: not read",
        }
    finally:
        (folder / "locked").chmod(0o755)


@pytest.mark.parametrize("top", ["array", "object"])
def test_deep_nesting_in_a_json_file_is_a_reject_in_linear_time(tmp_path: Path, top: str) -> None:
    """ijson.items builds a prefix string per event: 100,000 levels took minutes."""
    deep = "[" * 100_000 + "]" * 100_000
    body = f'[{deep}, {{"text": "after"}}]' if top == "array" else f'{{"text": "x", "m": {deep}}}'
    (tmp_path / "deep.json").write_text(body)
    inputs = [tmp_path / "deep.json", good_input(tmp_path)]
    report = qudata.pack_dataset(inputs, tmp_path / "out", config=FAST)
    assert report.dropped == {"invalid": 1}
    assert report.accepted == (2 if top == "array" else 1)
    assert rejects(tmp_path / "out")[0]["detail"] == "nested deeper than 1,024 levels"


def test_json_items_keep_their_values(tmp_path: Path) -> None:
    rows = [{"text": "a", "n": 1, "f": 2.5, "l": [None, True, {"k": "v"}]}, {"text": "b"}]
    (tmp_path / "in.json").write_bytes(b"  \n" + orjson.dumps(rows) + b"\n  ")
    report = qudata.pack_dataset(
        tmp_path / "in.json", tmp_path / "out", config=FAST, formats=["jsonl"]
    )
    assert report.accepted == 2
    (first, _) = [
        orjson.loads(x)
        for p in (tmp_path / "out/jsonl").glob("*.jsonl")
        for x in p.read_bytes().splitlines()
    ]
    # a list mixing types is written as strings, one type per position (counted): see
    # "One schema per output" in the README
    assert {k: first["metadata"][k] for k in ("n", "f", "l")} == {
        "n": 1,
        "f": 2.5,
        "l": [None, "true", '{"k":"v"}'],
    }
    assert report.formats["jsonl"].warnings["metadata_type_conflict"] >= 1


def test_trailing_garbage_after_a_json_array_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "in.json").write_bytes(b'[{"text": "a"}] [1]')
    with pytest.raises(InputError, match="invalid JSON after item 1"):
        qudata.pack_dataset(
            tmp_path / "in.json", tmp_path / "out", config={**FAST, "input": {"on_error": "fail"}}
        )
