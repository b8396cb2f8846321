"""Input sources (files, folders, globs, ``-``), codecs, and the streaming readers."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from qudata.errors import InputError
from qudata.io import RawRecord, Source, expand_inputs, read_records
from qudata.io.compression import open_for_reading
from qudata.io.sources import kind_of

ROWS = [{"id": f"r{i}", "text": f"Row {i} text é 👋"} for i in range(3)]


def jsonl_bytes(rows: list[Any]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)


def read_all(path: Path | str) -> list[RawRecord]:
    return [rec for src in expand_inputs(str(path)) for rec in read_records(src)]


# --- formats and codecs ---


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("in.jsonl", lambda b: b),
        ("in.ndjson", lambda b: b),
        ("in.jsonl.gz", gzip.compress),
        ("in.jsonl.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    ],
)
def test_jsonl_with_each_codec(tmp_path: Path, name: str, encode: Callable[[bytes], bytes]) -> None:
    path = tmp_path / name
    path.write_bytes(encode(jsonl_bytes(ROWS)))
    records = read_all(path)
    assert [r.row for r in records] == ROWS
    assert [r.line for r in records] == [1, 2, 3]
    assert all(r.error is None and r.origin == str(path) for r in records)


def test_zstd_stream_without_content_size(tmp_path: Path) -> None:
    """A streamed .zst (no frame content size, as `zstd` CLI pipes write) still reads."""
    path = tmp_path / "s.jsonl.zst"
    with open(path, "wb") as raw, zstandard.ZstdCompressor().stream_writer(raw) as writer:
        writer.write(jsonl_bytes(ROWS))
    assert [r.row for r in read_all(path)] == ROWS


def test_open_for_reading_decompresses(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress(b"abc\n"))
    with open_for_reading(str(path)) as stream:
        assert stream.read() == b"abc\n"


@pytest.mark.parametrize("codec", ["", ".gz", ".zst"])
def test_json_array(tmp_path: Path, codec: str) -> None:
    data = json.dumps(ROWS).encode()
    if codec == ".gz":
        data = gzip.compress(data)
    elif codec == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path = tmp_path / f"a.json{codec}"
    path.write_bytes(data)
    records = read_all(path)
    assert [r.row for r in records] == ROWS
    assert [r.line for r in records] == [1, 2, 3]


def test_json_array_floats_are_floats(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[{"text": "t", "quality_score": 0.85}]')
    (record,) = read_all(path)
    assert record.row == {"text": "t", "quality_score": 0.85}
    assert type(record.row["quality_score"]) is float


def test_json_array_non_object_item_is_a_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[{"text": "ok"}, 3]')
    records = read_all(path)
    assert records[0].error is None
    assert records[1].row is None and records[1].line == 2
    assert "expected a JSON object" in (records[1].error or "")


def test_json_array_syntax_error_is_input_error(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[{"text": "ok"}, {"text": ')
    with pytest.raises(InputError, match="invalid JSON after item 1"):
        read_all(path)


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "d.parquet"
    table = pa.table(
        {
            "id": ["a", "b"],
            "text": ["First.", "Second ü."],
            "quality_score": [0.9, 0.1],
            "topics": [["x"], []],
        }
    )
    pq.write_table(table, path)
    records = read_all(path)
    assert [r.line for r in records] == [1, 2]
    assert records[1].row == {"id": "b", "text": "Second ü.", "quality_score": 0.1, "topics": []}


# --- bad lines ---


def test_bad_lines_are_yielded_with_line_and_reason(bad_file: Path) -> None:
    records = read_all(bad_file)
    assert [r.line for r in records] == [1, 2, 3, 4, 5, 6, 7]
    by_line = {r.line: r for r in records}
    assert "invalid JSON" in (by_line[2].error or "")
    assert "expected a JSON object, got an array" in (by_line[3].error or "")
    assert by_line[4].row == {"id": "no-text", "body": "wrong key"}  # the normaliser rejects it
    assert by_line[5].row == {"id": "num-text", "text": 42}
    assert by_line[7].error == "invalid UTF-8"
    assert [r.row["id"] for r in records if r.row and r.line in (1, 6)] == ["ok-1", "ok-2"]


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    path.write_bytes(b'{"text": "a"}\n\n   \n{"text": "b"}\n')
    assert [r.line for r in read_all(path)] == [1, 4]


def test_crlf_and_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"text": "a"}\r\n{"text": "b"}')
    assert [r.row for r in read_all(path)] == [{"text": "a"}, {"text": "b"}]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [(b'"just a string"', "got str"), (b"42", "got int"), (b"null", "got NoneType")],
)
def test_non_object_lines(tmp_path: Path, line: bytes, fragment: str) -> None:
    path = tmp_path / "n.jsonl"
    path.write_bytes(line + b"\n")
    (record,) = read_all(path)
    assert record.row is None
    assert "expected a JSON object" in (record.error or "")
    assert fragment in (record.error or "")


def test_lone_surrogate_escape_is_rejected_not_crashing(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"text": "bad \\ud800 half"}\n{"text": "ok"}\n')
    records = read_all(path)
    assert records[0].row is None and records[0].error
    assert records[1].row == {"text": "ok"}


# --- folders of text files ---


def make_text_tree(root: Path) -> None:
    (root / "b").mkdir(parents=True)
    (root / "a.txt").write_text("Alpha text.\n", encoding="utf-8")
    (root / "b" / "c.md").write_text("# The Title\n\nBody of c.\n", encoding="utf-8")
    (root / "b" / "a.md").write_text("No heading here.\n", encoding="utf-8")
    (root / "z.txt").write_text("Zed.", encoding="utf-8")
    (root / ".hidden.txt").write_text("hidden", encoding="utf-8")
    (root / ".git").mkdir()
    (root / ".git" / "x.txt").write_text("hidden", encoding="utf-8")
    (root / "notes.csv").write_text("ignored", encoding="utf-8")


def test_folder_of_text_files_in_sorted_order_with_relative_ids(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    make_text_tree(root)
    sources = expand_inputs(root)
    assert [s.name for s in sources] == ["a.txt", "z.txt", "b/a.md", "b/c.md"]
    rows = [r.row for r in read_all(root)]
    assert [row["id"] for row in rows] == ["a.txt", "z.txt", "b/a.md", "b/c.md"]  # type: ignore[index]
    assert rows[0] == {"id": "a.txt", "text": "Alpha text.\n", "source": "a.txt"}
    assert rows[3]["title"] == "The Title"  # type: ignore[index]
    assert "title" not in rows[2]  # type: ignore[operator]


def test_text_file_with_custom_keys(tmp_path: Path) -> None:
    path = tmp_path / "one.txt"
    path.write_text("Hi.", encoding="utf-8")
    (source,) = expand_inputs(path)
    (record,) = read_records(source, text_key="raw_content", id_key="uid")
    assert record.row == {"uid": "one.txt", "raw_content": "Hi.", "source": "one.txt"}


def test_text_file_with_invalid_utf8_is_a_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"caf\xe9")
    (record,) = read_all(path)
    assert record.row is None
    assert "invalid UTF-8" in (record.error or "")


def test_directory_recursion_is_sorted_and_mixes_kinds(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "b").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "b" / "1.jsonl").write_bytes(jsonl_bytes([{"text": "b1"}]))
    (root / "a" / "2.jsonl").write_bytes(jsonl_bytes([{"text": "a2"}]))
    (root / "a" / "1.jsonl.gz").write_bytes(gzip.compress(jsonl_bytes([{"text": "a1"}])))
    (root / "0.json").write_text(json.dumps([{"text": "root"}]))
    texts = [r.row["text"] for r in read_all(root)]  # type: ignore[index]
    assert texts == ["root", "a1", "a2", "b1"]


def test_glob_is_sorted(tmp_path: Path) -> None:
    for name in ("c", "a", "b"):
        (tmp_path / f"{name}.jsonl").write_bytes(jsonl_bytes([{"text": name}]))
    (tmp_path / "skip.txt").write_text("not matched")
    sources = expand_inputs(str(tmp_path / "*.jsonl"))
    assert [Path(s.path).name for s in sources] == ["a.jsonl", "b.jsonl", "c.jsonl"]


def test_argument_order_is_kept(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.jsonl").write_bytes(jsonl_bytes([{"text": name}]))
    sources = expand_inputs([tmp_path / "b.jsonl", tmp_path / "a.jsonl"])
    assert [Path(s.path).name for s in sources] == ["b.jsonl", "a.jsonl"]


def test_dash_is_stdin() -> None:
    assert expand_inputs("-") == [Source("-", "jsonl", "<stdin>")]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.jsonl", "jsonl"),
        ("a.JSONL.GZ", "jsonl"),
        ("a.json.zst", "json"),
        ("a.parquet", "parquet"),
        ("a.md", "text"),
        ("a.parquet.gz", None),
        ("a.txt.zst", None),
        ("a.csv", None),
    ],
)
def test_kind_of(name: str, kind: str | None) -> None:
    assert kind_of(name) == kind


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        expand_inputs(tmp_path / "missing.jsonl")


def test_glob_without_match_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no file matches"):
        expand_inputs(str(tmp_path / "*.jsonl"))


def test_unknown_file_type_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b")
    with pytest.raises(InputError, match="unknown input type"):
        expand_inputs(path)


def test_folder_without_inputs_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a")
    with pytest.raises(InputError, match="folder holds no"):
        expand_inputs(tmp_path)


def test_integers_beyond_64_bits_stay_integers(tmp_path: Path) -> None:
    """orjson reads an integer beyond uint64 as a float: such lines are read exactly."""
    path = tmp_path / "big.jsonl"
    path.write_text('{"text": "a", "n": 1180591620717411303424, "s": "12345678901234567890"}\n')
    (record,) = read_records(Source(str(path), "jsonl", str(path)))
    assert record.row == {"text": "a", "n": 2**70, "s": "12345678901234567890"}
    assert type(record.row["n"]) is int
