"""Parquet: a schema declared before the first row, and nothing dropped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.io.parquet import ParquetShardWriter
from qudata.pack.parquet import ParquetFormatter, parquet_schema

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

DATA = Path(__file__).resolve().parents[1] / "data" / "export"
FAST = {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}
COLUMNS = [
    ("id", "string"),
    ("text", "string"),
    ("labels", "list<element: string>"),
    ("quality_score", "double"),
    ("source", "string"),
    ("title", "string"),
    ("language", "string"),
    ("topics", "list<element: string>"),
    ("author", "string"),
    ("domain", "string"),
    ("entities_json", "string"),
    (
        "messages",
        "list<element: struct<role: string, content: string, reasoning_content: string, "
        "name: string, weight: double, "
        "tool_calls: string, tool_call_id: string>>",
    ),
    ("metadata_json", "string"),
    ("tools_json", "string"),
    ("parallel_tool_calls", "bool"),
    (
        "rejected",
        "list<element: struct<role: string, content: string, reasoning_content: string, "
        "name: string, weight: double, "
        "tool_calls: string, tool_call_id: string>>",
    ),
    ("prompt_turns", "int64"),
    ("images", "list<element: string>"),
    ("videos", "list<element: string>"),
    ("audios", "list<element: string>"),
]


def conversations() -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in (DATA / "conversations.jsonl").read_bytes().splitlines()]


def late_rich_input(path: Path, bare: int = 3000) -> Path:
    """``bare`` documents with only id and text (more than a row group), then rich ones."""
    rows: list[dict[str, Any]] = [
        {"id": f"bare-{i}", "text": f"Bare text {i}."} for i in range(bare)
    ]
    rows += conversations()
    rows.append(
        {
            "id": "rich-doc",
            "text": "A rich document.",
            "metadata": {"source": "x.pdf", "page_count": 3, "nested": {"a": [1, 2.5, None]}},
            "topics": ["t1", "t2"],
            "labels": ["l"],
            "quality_score": 0.5,
            "title": "Rich",
            "entities": ["E1"],
            "unicode_key_é": "value ✓",
        }
    )
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("parquet")
    out = base / "out"
    config = {**FAST, "output": {"shard_records": 1000}, "dedup": {"method": "none"}}
    qudata.pack_dataset(late_rich_input(base / "in.jsonl"), out, formats=["parquet"], config=config)
    return out


def rows(out: Path) -> dict[str, dict[str, Any]]:
    result = {}
    for path in sorted((out / "parquet").glob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            result[row["id"]] = row
    return result


def test_declared_schema_is_exactly_the_documented_one() -> None:
    schema = parquet_schema()  # Arrow calls a list's child "item", Parquet files "element"
    assert [(f.name, str(f.type).replace("<item:", "<element:")) for f in schema] == COLUMNS


def test_every_shard_has_the_declared_schema_even_when_optional_fields_come_late(
    packed: Path,
) -> None:
    files = sorted((packed / "parquet").glob("*.parquet"))
    assert len(files) == 4  # 3000 bare rows, then the rich ones in the last shard
    for path in files:
        schema = pq.read_schema(path)
        assert schema.equals(parquet_schema()), (path.name, schema)
        assert [(f.name, str(f.type)) for f in schema] == COLUMNS
        assert all(f.nullable for f in schema)
    assert pq.read_table(files[0]).column("title").null_count == 1000


def test_conversations_become_message_structs_with_tool_calls_as_json(packed: Path) -> None:
    by_id = rows(packed)
    source = conversations()[0]
    messages = by_id["tool-call"]["messages"]
    assert [m["role"] for m in messages] == [m["role"] for m in source["messages"]]
    assert [m["content"] for m in messages] == [m["content"] for m in source["messages"]]
    assert orjson.loads(messages[2]["tool_calls"]) == source["messages"][2]["tool_calls"]
    assert messages[3]["tool_call_id"] == "call_1"
    assert messages[4]["weight"] == 1.0 and messages[4]["name"] == "bot"
    assert messages[0]["tool_calls"] is None and messages[0]["weight"] is None
    sharegpt = by_id["sharegpt"]["messages"]
    assert [(m["role"], m["content"]) for m in sharegpt] == [
        ("user", "Hi"),
        ("assistant", "Hello!"),
    ]
    assert by_id["bare-0"]["messages"] is None


def test_known_keys_are_columns_and_every_other_key_is_in_metadata_json(packed: Path) -> None:
    by_id = rows(packed)
    call = by_id["tool-call"]
    assert call["title"] == "Oslo weather" and call["language"] == "en"
    assert call["author"] == "Ann" and call["domain"] == "weather"
    assert call["topics"] == ["weather"] and call["labels"] == ["tools"]
    assert call["quality_score"] == 0.9
    assert orjson.loads(call["entities_json"]) == [{"text": "Oslo", "type": "LOC"}]
    assert orjson.loads(call["metadata_json"]) == {
        "license": "CC0",
        "rating": {"stars": 5, "tags": ["ok", None]},
    }
    assert orjson.loads(by_id["sharegpt"]["metadata_json"]) == {"turn_count": 2}
    assert by_id["sharegpt"]["source"] == "chat.log"
    rich = by_id["rich-doc"]
    assert orjson.loads(rich["metadata_json"]) == {
        "page_count": 3,
        "nested": {"a": [1, 2.5, None]},
        "unicode_key_é": "value ✓",
    }
    assert rich["source"] == "x.pdf" and rich["topics"] == ["t1", "t2"]
    assert orjson.loads(rich["entities_json"]) == ["E1"]
    assert by_id["bare-1"]["metadata_json"] == "{}"
    assert by_id["bare-1"]["entities_json"] is None


def test_tools_and_preference_pairs_are_kept(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    shapes = Path(__file__).parent.parent / "data" / "shapes"
    inputs = [shapes / "openai_tools.jsonl", shapes / "preference_hh.jsonl"]
    out = tmp_path / "out"
    config = {"quality": {"tokenizer": "none"}}
    qudata.pack_dataset(inputs, out, config=config, formats=["parquet"])
    (path,) = (out / "parquet").glob("*.parquet")
    first, _, pair = pq.read_table(path).to_pylist()
    assert orjson.loads(first["tools_json"])[1]["function"]["name"] == "get_time"
    assert first["parallel_tool_calls"] is True and first["rejected"] is None
    assert pair["prompt_turns"] == 3 and pair["rejected"][0]["content"] == "No idea."
    assert pair["messages"][-1]["content"] == "6." and pair["tools_json"] is None


def test_nothing_is_dropped(packed: Path) -> None:
    manifest = orjson.loads((packed / "manifest.json").read_bytes())
    assert manifest["counts"]["read"] == 3003
    assert manifest["formats"]["parquet"]["documents"] == 3003
    assert manifest["formats"]["parquet"]["dropped"] == {}
    assert len(rows(packed)) == 3003


def test_export_to_file_declares_the_same_schema(tmp_path: Path) -> None:
    target = tmp_path / "one.parquet"
    docs = [{"text": "plain", "id": "p"}, *conversations()]
    ParquetFormatter(FAST).export_to_file(docs, target)
    assert pq.read_schema(target).equals(parquet_schema())
    assert [r["id"] for r in pq.read_table(target).to_pylist()] == ["p", "tool-call", "sharegpt"]
    assert [p.name for p in tmp_path.iterdir()] == ["one.parquet"]


def test_shard_writer_names_and_abort(tmp_path: Path) -> None:
    record = ParquetFormatter(FAST).format_document(
        qudata.Document(text="x", id="1"), ParquetFormatter(FAST).options, {}
    )
    assert isinstance(record, list)
    writer = ParquetShardWriter(
        tmp_path / "parquet", "test", schema=parquet_schema(), relative_to=tmp_path, max_records=2
    )
    for _ in range(5):
        writer.write_document(record)
    files = writer.close()
    assert [f.path for f in files] == [f"parquet/test-0000{i}-of-00003.parquet" for i in range(3)]
    assert [f.records for f in files] == [2, 2, 1]
    for file in files:
        assert file.bytes == (tmp_path / file.path).stat().st_size
    aborted = ParquetShardWriter(
        tmp_path / "other", "train", schema=parquet_schema(), relative_to=tmp_path, max_records=2
    )
    for _ in range(5):
        aborted.write_document(record)
    aborted.abort()
    assert list((tmp_path / "other").iterdir()) == []
