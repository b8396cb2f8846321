"""The output schema: learnt before writing, mergeable, serialisable, one type per key."""

from __future__ import annotations

import io
from collections import Counter

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qudata.models import Document
from qudata.normalize.document import DocumentNormalizer
from qudata.pack import JSONLFormatter
from qudata.pack.metadata import MetadataWriter, metadata_features
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


KEYS = st.sampled_from(["a", "b", "c"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metas=st.lists(st.dictionaries(KEYS, VALUES, max_size=3), min_size=1, max_size=5))
def test_any_metadata_loads_with_its_declared_features_as_written(
    metas: list[dict[str, object]],
) -> None:
    """Whatever the documents hold, the learnt schema gives one Arrow type per position,
    and the declared features (the card's) read every line back exactly."""
    datasets = pytest.importorskip("datasets")
    pa_json = pytest.importorskip("pyarrow.json")
    normalize = DocumentNormalizer()
    docs = [normalize({"text": "t", "metadata": meta}) for meta in metas]
    schema = MetadataSchema()
    for doc in docs:
        schema.observe(doc)
    writer = MetadataWriter(Counter(), schema=schema)
    records = [{"metadata": writer.build(doc)} for doc in docs]
    declared = [{"name": "metadata", "struct": metadata_features(writer)}]
    arrow = datasets.Features._from_yaml_list(declared).arrow_schema
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    options = pa_json.ParseOptions(explicit_schema=arrow)
    table = pa_json.read_json(io.BytesIO(data), parse_options=options)
    assert repr(table.to_pylist()) == repr(records)  # -0.0 and int vs float included
