"""The output schema: learnt before writing, mergeable, serialisable, one type per key."""

from __future__ import annotations

from collections import Counter

from qudata.models import Document
from qudata.pack import JSONLFormatter
from qudata.pack.metadata import MetadataWriter
from qudata.pack.schema import MetadataSchema


def test_metadata_schema_merges_partitions_like_one_pass() -> None:
    docs = [
        Document(text="a", metadata={"k": 1}, messages=[{"role": "user", "content": "x"}]),
        Document(text="b", metadata={"late": {"z": True}}),
    ]
    whole, left, right = MetadataSchema(), MetadataSchema(), MetadataSchema()
    for doc in docs:
        whole.observe(doc)
    left.observe(docs[0])
    right.observe(docs[1])
    merged = MetadataSchema.from_json(left.to_json()).merge(right)
    assert merged.to_json() == whole.to_json()
    writer = MetadataWriter(Counter(), schema=merged)
    meta = writer.build(docs[0])
    assert list(meta)[-2:] == ["k", "late"] and meta["late"] is None


def test_formatter_calls_learn_the_keys_of_every_document_first() -> None:
    records = JSONLFormatter().format_documents(
        [{"text": "a"}, {"text": "b", "late": {"x": 1}}], fields=["metadata"]
    )
    assert [r["metadata"]["late"] for r in records] == [None, {"x": 1}]
