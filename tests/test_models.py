"""DocumentNormalizer: every input shape becomes one Document, or a clear InputError."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from qudata.errors import InputError
from qudata.models import Document
from qudata.normalize.document import DocumentNormalizer


@dataclass
class PipelineMeta:
    quality_score: float
    topics: list[str] = field(default_factory=list)
    language: str = "en"


@dataclass
class PipelineDoc:
    """The shape of a document-processing pipeline's output objects."""

    content: str
    source_path: str
    metadata: PipelineMeta


class PlainMeta:
    """A non-dataclass metadata object (attributes only)."""

    def __init__(self) -> None:
        self.quality_score = 0.5
        self.topics = ["x"]
        self._private = "hidden"


class PlainDoc:
    def __init__(self) -> None:
        self.content = "Body."
        self.source_path = "in/b.pdf"
        self.metadata = PlainMeta()


def test_dict_fields_go_to_metadata_and_attributes() -> None:
    doc = DocumentNormalizer()(
        {"id": "a", "text": "Hi.", "source": "a.pdf", "quality_score": 0.85, "labels": ["x"]}
    )
    assert doc.id == "a"
    assert doc.text == "Hi."
    assert doc.source == "a.pdf"
    assert doc.quality_score == 0.85
    assert doc.labels == ["x"]
    assert "quality_score" not in doc.metadata


def test_nested_metadata_object_is_read() -> None:
    doc = DocumentNormalizer()(
        {"text": "t", "metadata": {"source": "s.pdf", "topics": ["AI"], "quality_score": 0.5}}
    )
    assert doc.source == "s.pdf"
    assert doc.topics == ["AI"]
    assert doc.quality_score == 0.5


def test_topics_string_becomes_list_and_labels_are_strings() -> None:
    doc = DocumentNormalizer()({"text": "t", "topics": "AI", "labels": [1, "b"]})
    assert doc.topics == ["AI"]
    assert doc.labels == ["1", "b"]


def test_unknown_metadata_keys_are_preserved() -> None:
    doc = DocumentNormalizer()({"text": "t", "page_count": 3, "extra": {"a": [1]}})
    assert doc.metadata["page_count"] == 3
    assert doc.metadata["extra"] == {"a": [1]}


def test_integer_id_becomes_string() -> None:
    assert DocumentNormalizer()({"id": 7, "text": "t"}).id == "7"


def test_pipeline_object_with_dataclass_metadata() -> None:
    obj = PipelineDoc("Body text.", "in/a.pdf", PipelineMeta(0.85, ["technology", "AI"]))
    doc = DocumentNormalizer()(obj)
    assert doc.text == "Body text."
    assert doc.source == "in/a.pdf"
    assert doc.quality_score == 0.85
    assert doc.topics == ["technology", "AI"]
    assert doc.metadata["language"] == "en"
    assert "content" not in doc.metadata
    assert "source_path" not in doc.metadata


def test_pipeline_object_with_plain_metadata_object() -> None:
    doc = DocumentNormalizer()(PlainDoc())
    assert (doc.text, doc.source, doc.quality_score, doc.topics) == (
        "Body.",
        "in/b.pdf",
        0.5,
        ["x"],
    )
    assert "_private" not in doc.metadata


def test_document_input_is_copied_not_mutated() -> None:
    original = Document(text="t", metadata={"source": "s"})
    doc = DocumentNormalizer()(original)
    doc.metadata["source"] = "changed"
    assert original.metadata["source"] == "s"
    assert original.id == ""
    assert doc.id.startswith("doc-")


def test_document_quality_score_in_metadata_is_lifted() -> None:
    doc = DocumentNormalizer()(Document(text="t", metadata={"quality_score": 0.3}))
    assert doc.quality_score == 0.3


def test_custom_text_and_id_keys() -> None:
    normalize = DocumentNormalizer(text_key="raw_content", id_key="uid")
    doc = normalize({"uid": "u1", "raw_content": "Raw.", "text": "not the text"})
    assert doc.id == "u1"
    assert doc.text == "Raw."
    assert doc.metadata["text"] == "not the text"


def test_custom_text_key_missing_names_that_key() -> None:
    with pytest.raises(InputError, match="raw_content"):
        DocumentNormalizer(text_key="raw_content")({"text": "x"})


def test_derived_ids_are_stable_and_numbered_in_order() -> None:
    rows = [{"text": "same"}, {"text": "same"}, {"text": "other"}, {"text": "same"}]
    normalize, again = DocumentNormalizer(), DocumentNormalizer()
    first = [normalize(r).id for r in rows]
    second = [again(r).id for r in rows]
    assert first == second
    base = first[0]
    assert base.startswith("doc-")
    assert first[1] == f"{base}-2"
    assert first[3] == f"{base}-3"
    assert first[2] != base and not first[2].endswith("-2")


def test_empty_id_is_derived() -> None:
    assert DocumentNormalizer()({"id": "", "text": "x"}).id.startswith("doc-")


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ({"body": "no text"}, "no 'text' field"),
        ({"text": 42}, "must be a string, got number"),
        ({"text": ["a"]}, "must be a string, got array"),
        ({"text": "t", "metadata": "oops"}, "'metadata' must be an object"),
        ({"text": "t", "id": True}, "'id' must be a string or integer"),
        ({"text": "t", "quality_score": "high"}, "quality_score"),
        ({"text": "t", "quality_score": float("nan")}, "finite"),
        ({"text": "t", "topics": 5}, "'topics' must be a list"),
        ({"text": "t", "source": ["a"]}, "'source' must be a string"),
    ],
)
def test_bad_rows_raise_input_error_with_location(row: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InputError, match=r"in\.jsonl:3") as info:
        DocumentNormalizer()(row, origin="in.jsonl", line=3)
    assert fragment in str(info.value)
    assert info.value.source == "in.jsonl"
    assert info.value.line == 3


def test_messages_input_is_a_conversation() -> None:
    doc = DocumentNormalizer()(
        {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}
    )
    assert doc.conversation_kind == "messages"
    assert [m["role"] for m in doc.messages or []] == ["user", "assistant"]
    assert doc.text == "Q?\n\nA."
    assert "messages" not in doc.metadata


def test_sharegpt_roles_are_normalised() -> None:
    doc = DocumentNormalizer()(
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    )
    assert doc.conversation_kind == "sharegpt"
    assert doc.messages == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]
    assert "conversations" not in doc.metadata


@pytest.mark.parametrize("score", [1.7, -0.01, float("inf"), float("nan"), "0.5", True, 2])
def test_quality_score_outside_0_1_is_invalid_quality_score(score: Any) -> None:
    with pytest.raises(InputError) as info:
        DocumentNormalizer()({"text": "t", "quality_score": score}, origin="in.jsonl", line=1)
    assert info.value.reason == "invalid_quality_score"
    with pytest.raises(InputError):  # a Document given directly is checked too
        DocumentNormalizer()(Document(text="t", quality_score=score))


@pytest.mark.parametrize("score", [0, 1, 0.0, 1.0, 0.5])
def test_quality_score_in_0_1_is_kept_as_a_float(score: float) -> None:
    doc = DocumentNormalizer()({"text": "t", "quality_score": score})
    assert doc.quality_score == score and type(doc.quality_score) is float
