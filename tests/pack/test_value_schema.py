"""One value position's type: learnt, refined for Arrow, mergeable, serialisable."""

from __future__ import annotations

from collections import Counter

from qudata.pack.value_schema import ValueSchema


def learnt(*values: object) -> ValueSchema:
    schema = ValueSchema()
    for value in values:
        schema.observe(value)
    return schema


def test_numbers_are_refined_for_arrow() -> None:
    assert learnt(1, 2**53 + 1).type == "integer"
    assert learnt(1, 0.5).type == "float"
    assert learnt(0.5, 2**53 + 1).type == "string"  # no exact float for the integer
    assert learnt(1, 2**63).type == "string"  # beyond int64
    assert learnt("a", 1).type == "string" and learnt(1, "a").type == "string"
    assert learnt(None).type == "null" and learnt({}).type == "null"


def test_conform_fills_absent_fields_in_a_fixed_order_and_counts_conversions() -> None:
    schema = learnt({"b": 1, "n": {"x": 1}}, {"a": "s", "n": {"y": 2.5}}, {"b": 0.5})
    warnings: Counter[str] = Counter()
    assert schema.conform({"a": "t"}, warnings) == {"b": None, "n": None, "a": "t"}
    out = schema.conform({"n": {"x": 3}, "b": 2}, warnings)
    assert out == {"b": 2.0, "n": {"x": 3, "y": None}, "a": None}
    assert type(out["b"]) is float and warnings == {"metadata_int_as_float": 1}
    huge = learnt(2**70, 3)
    assert huge.conform(2**70, warnings) == str(2**70)
    assert huge.conform(3, warnings) == "3"
    assert warnings["metadata_int_out_of_range"] == 1


def test_merge_is_first_wins_and_round_trips_through_json() -> None:
    first, second = learnt({"a": 1, "b": "x"}), learnt({"c": [1.5], "a": "text"})
    merged = ValueSchema.from_json(first.to_json()).merge(second)
    assert list(merged.fields) == ["a", "b", "c"]
    assert merged.fields["a"].type == "string"  # int and string: a string key
    assert merged == learnt({"a": 1, "b": "x"}, {"c": [1.5], "a": "text"})
    assert ValueSchema.from_json(merged.to_json()) == merged
