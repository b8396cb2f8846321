"""JSONL: exactly the requested keys, stable types per key, raw UTF-8, no NaN."""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qudata.models import KNOWN_METADATA_KEYS
from qudata.pack import JSONLFormatter

LIST_KEYS = ("topics", "labels", "entities")


def test_fields_are_exactly_the_requested_keys_in_order(tmp_path: Path) -> None:
    docs = [
        {"text": "a", "labels": ["x"], "source": "a.pdf"},
        {"text": "b"},  # no labels, no metadata at all
    ]
    path = tmp_path / "o.jsonl"
    JSONLFormatter().export_to_file(docs, path, fields=["quality_score", "text", "id", "source"])
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert [list(x) for x in lines] == [["quality_score", "text", "id", "source"]] * 2
    assert lines[0]["source"] == "a.pdf"
    assert lines[1]["source"] is None
    assert lines[1]["quality_score"] is None


def test_every_line_has_the_same_keys(docs_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    docs = [orjson.loads(x) for x in docs_file.read_bytes().splitlines()]
    JSONLFormatter().export_to_file(docs, path)
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert len(lines) == len(docs)
    assert {tuple(x) for x in lines} == {("text", "labels", "metadata")}
    meta_keys = [list(x["metadata"]) for x in lines]
    for keys in meta_keys:
        assert keys[: len(KNOWN_METADATA_KEYS)] == [
            "source",
            "quality_score",
            "topics",
            "title",
            "language",
            "labels",
            "author",
            "domain",
            "entities",
        ]


def test_known_metadata_keys_have_fixed_types() -> None:
    records = JSONLFormatter().format_documents(
        [{"text": "a"}, {"text": "b", "topics": "AI", "labels": "x", "source": "s", "title": 3}],
        fields=["metadata"],
    )
    for record in records:
        meta = record["metadata"]
        assert set(KNOWN_METADATA_KEYS) <= set(meta)
        for key in LIST_KEYS:
            assert isinstance(meta[key], list)
        for key in ("source", "title", "language", "author", "domain"):
            assert meta[key] is None or isinstance(meta[key], str)
        assert meta["quality_score"] is None or isinstance(meta["quality_score"], float)
    assert records[0]["metadata"]["source"] is None
    assert records[0]["metadata"]["topics"] == []
    assert records[1]["metadata"]["topics"] == ["AI"]
    assert records[1]["metadata"]["labels"] == ["x"]
    assert records[1]["metadata"]["title"] == "3"


def test_unknown_metadata_is_preserved() -> None:
    formatter = JSONLFormatter()
    (record,) = formatter.format_documents(
        [{"text": "a", "page_count": 3, "extra": {"k": [1, "two"], "n": {"x": 1.5}}}],
        fields=["metadata"],
    )
    assert record["metadata"]["page_count"] == 3
    # an Arrow list holds one type: a list mixing numbers and strings is written as strings
    assert record["metadata"]["extra"] == {"k": ["1", "two"], "n": {"x": 1.5}}
    assert formatter.stats.warnings["metadata_type_conflict"] == 1


def test_unknown_key_type_change_becomes_string_and_is_counted() -> None:
    formatter = JSONLFormatter()
    records = formatter.format_documents(
        [
            {"text": "a", "version": "1.0"},
            {"text": "b", "version": 2},
            {"text": "c"},
            {"text": "d", "version": "3"},
        ],
        fields=["metadata"],
    )
    versions = [r["metadata"].get("version") for r in records]
    assert versions == ["1.0", "2", None, "3"]
    assert formatter.stats.warnings["metadata_type_conflict"] == 1


def test_type_memory_is_per_call() -> None:
    formatter = JSONLFormatter()
    formatter.format_documents([{"text": "a", "v": "s"}], fields=["metadata"])
    (record,) = formatter.format_documents([{"text": "b", "v": 1}], fields=["metadata"])
    assert record["metadata"]["v"] == 1
    assert formatter.stats.warnings["metadata_type_conflict"] == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_unknown_metadata_becomes_null(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "o.jsonl"
    formatter = JSONLFormatter()
    formatter.export_to_file(
        [{"text": "a", "score2": bad, "nested": {"x": [1.0, bad]}}], path, fields=["metadata"]
    )
    data = path.read_bytes()
    assert b"NaN" not in data and b"Infinity" not in data
    meta = orjson.loads(data)["metadata"]
    assert meta["score2"] is None
    assert meta["nested"] == {"x": [1.0, None]}
    assert formatter.stats.warnings["metadata_non_finite"] == 2


def test_field_mapping_renames_keys() -> None:
    (record,) = JSONLFormatter().format_documents(
        [{"id": "d1", "text": "a"}],
        fields=["id", "text"],
        field_mapping={"text": "content", "id": "doc_id"},
    )
    assert list(record.items()) == [("doc_id", "d1"), ("content", "a")]


def test_filter_low_quality_drops_with_reason() -> None:
    formatter = JSONLFormatter()
    docs = [
        {"id": "hi", "text": "a", "quality_score": 0.9},
        {"id": "lo", "text": "b", "quality_score": 0.69},
        {"id": "edge", "text": "c", "quality_score": 0.7},
        {"id": "none", "text": "d"},
    ]
    records = formatter.format_documents(docs, fields=["id"], filter_low_quality=True)
    assert [r["id"] for r in records] == ["hi", "edge", "none"]
    assert formatter.stats.dropped == {"low_quality": 1}
    assert formatter.stats.documents == 3


def test_min_quality_score_is_configurable_and_ignored_without_filter() -> None:
    docs = [{"id": "a", "text": "a", "quality_score": 0.5}]
    kept = JSONLFormatter().format_documents(docs, fields=["id"], min_quality_score=0.9)
    assert kept == [{"id": "a"}]
    formatter = JSONLFormatter()
    assert (
        formatter.format_documents(
            docs, config={"filter_low_quality": True, "min_quality_score": 0.6}
        )
        == []
    )
    assert formatter.stats.dropped["low_quality"] == 1


def test_empty_text_is_written_as_empty_string(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    stats = JSONLFormatter().export_to_file([{"id": "e", "text": ""}], path, fields=["id", "text"])
    assert path.read_bytes() == b'{"id":"e","text":""}\n'
    assert stats.documents == 1 and not stats.dropped


def test_output_is_raw_utf8(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    text = "Grüße — 東京 — مرحبا — 👋"
    JSONLFormatter().export_to_file([{"text": text, "author": "Zoë"}], path)
    data = path.read_bytes()
    assert text.encode("utf-8") in data
    assert "Zoë".encode() in data
    assert b"\\u" not in data


def test_export_stats_match_file(tmp_path: Path, spec_docs: list[dict[str, Any]]) -> None:
    path = tmp_path / "o.jsonl"
    stats = JSONLFormatter().export_to_file(spec_docs, path)
    assert stats.bytes == path.stat().st_size
    assert stats.documents == stats.records == 2


def test_messages_field_for_conversations() -> None:
    row = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    (record,) = JSONLFormatter().format_documents([row], fields=["text", "messages"])
    assert record == {"text": "Q\n\nA", "messages": row["messages"]}


def test_type_mixed_output_loads_with_pyarrow(
    tmp_path: Path, write_jsonl: Callable[[Path, list[Any]], Path]
) -> None:
    pa_json = pytest.importorskip("pyarrow.json")
    docs = [
        {
            "text": "a",
            "source": "a.pdf",
            "quality_score": 0.9,
            "topics": ["x"],
            "v": "one",
            "flag": True,
            "n": 1,
            "obj": {"a": 1},
        },
        {
            "text": "b",
            "quality_score": 1,
            "topics": "y",
            "v": 2,
            "flag": "yes",
            "n": 2.5,
            "obj": [1, 2],
        },
        {"text": "c", "labels": ["l"], "v": None, "flag": False, "n": "many", "obj": "str"},
        {"text": "d", "title": 7, "entities": ["Paris"], "v": [1], "n": float("nan")},
    ]
    path = tmp_path / "o.jsonl"
    JSONLFormatter().export_to_file(docs, path, fields=["text", "labels", "metadata"])
    table = pa_json.read_json(path)
    assert table.num_rows == 4
    assert table.column("text").to_pylist() == ["a", "b", "c", "d"]
    meta = table.column("metadata").to_pylist()
    assert [m["topics"] for m in meta] == [["x"], ["y"], [], []]
    assert [m["quality_score"] for m in meta] == [0.9, 1.0, None, None]


# --- property: any text and metadata survives a JSONL round trip ---

_unicode_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),  # no lone surrogates
    max_size=80,
) | st.sampled_from(
    ["", "👋🏽 family: 👨‍👩‍👧", "مرحبا بالعالم", "שלום\u200f", "a\u0000b", "\r\n\t"]
)
_json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10)
)
_metadata = st.dictionaries(
    st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6).filter(
        lambda k: k not in (*KNOWN_METADATA_KEYS, "text", "id", "content", "metadata", "messages")
    ),
    _json_scalar | st.lists(_json_scalar, max_size=3),
    max_size=4,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    docs=st.lists(
        st.tuples(_unicode_text, st.one_of(st.none(), st.text(min_size=1, max_size=8)), _metadata),
        min_size=1,
        max_size=6,
    )
)
def test_roundtrip_text_and_id(
    tmp_path: Path, docs: list[tuple[str, str | None, dict[str, Any]]]
) -> None:
    rows = []
    for text, doc_id, meta in docs:
        row: dict[str, Any] = {"text": text, "metadata": meta}
        if doc_id is not None:
            row["id"] = doc_id
        rows.append(row)
    path = tmp_path / "rt.jsonl"
    JSONLFormatter().export_to_file(rows, path, fields=["id", "text", "metadata"])
    data = path.read_bytes()
    lines = data.split(b"\n")
    assert lines[-1] == b""  # one final newline, nothing after it
    parsed = [orjson.loads(line) for line in lines[:-1]]
    assert [p["text"] for p in parsed] == [r["text"] for r in rows]
    for p, r in zip(parsed, rows, strict=True):
        if "id" in r:
            assert p["id"] == r["id"]
        else:
            assert p["id"].startswith("doc-")
        for value in p["metadata"].values():
            assert not (isinstance(value, float) and not math.isfinite(value))
    derived = [p["id"] for p, r in zip(parsed, rows, strict=True) if "id" not in r]
    assert len(set(derived)) == len(derived)  # same text twice: -2, -3, ...


def test_derived_ids_for_repeated_text() -> None:
    docs = [{"text": "same"}, {"text": "same"}, {"id": "x", "text": "same"}, {"text": "same"}]
    ids = [r["id"] for r in JSONLFormatter().format_documents(docs, fields=["id"])]
    assert ids[0].startswith("doc-")
    assert ids[1:] == [f"{ids[0]}-2", "x", f"{ids[0]}-3"]
    again = [r["id"] for r in JSONLFormatter().format_documents(docs, fields=["id"])]
    assert again == ids
