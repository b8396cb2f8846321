"""The drop log: examples per reason, files mostly rejected, the nothing-written error."""

from __future__ import annotations

from qudata.quality.drop_log import DropLog


def test_a_record_is_rejected_once_every_format_dropped_it() -> None:
    log = DropLog(formats=2)
    log.add("a.jsonl", 1, "empty_text", "empty", fmt="chatml", doc_id="x")
    assert log.rejected == {}
    log.add("a.jsonl", 1, "empty_text", "empty", fmt="plain", doc_id="x")
    log.add("a.jsonl", 2, "invalid", "bad JSON", fmt=None)
    assert log.rejected == {"a.jsonl": 2}
    notes = log.notes([{"path": "a.jsonl", "records": 3}, {"path": "b.jsonl", "records": 4}])
    assert notes == [
        "a.jsonl: 2 of 3 records rejected (66%), most as empty_text (1): a.jsonl:1: empty"
    ]
    assert log.notes([{"path": "a.jsonl", "records": 4}]) == []  # half is not over half


def test_top_reasons_and_the_error() -> None:
    log = DropLog(formats=1)
    for line in range(3):
        log.add("a.jsonl", line + 1, "unknown_shape", "no known shape", fmt=None)
    log.add("a.jsonl", 9, "invalid", "bad", fmt=None)
    assert [r for r, _, _ in log.top()] == ["unknown_shape", "invalid"]
    message = log.nothing_written(4)
    assert message == (
        "nothing was written: none of 4 records reached an output; top reasons: "
        "unknown_shape 3 (e.g. a.jsonl:1: no known shape); invalid 1 (e.g. a.jsonl:9: bad); "
        "name the fields with input.columns (e.g. --column prompt=instruction)"
    )
    assert "input.columns" in log.notes([])[0]
    assert (
        DropLog(formats=1).nothing_written(0) == "nothing was written: the inputs hold no records"
    )
