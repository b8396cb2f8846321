"""``--resume`` reads the staging folder as data only: a planted pickle never runs, and a
record that is truncated, edited or does not parse is computed again (and said so)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest
import xxhash
from test_resume import CONFIG, _input, _killed_run, _tree

import qudata
from qudata.errors import IntegrityError


class _Plant:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _records(tmp_path: Path) -> Path:
    (staging,) = tmp_path.glob(".out.qudata-partial-*")
    return staging / ".parts" / "done"


def _same_as_fresh(tmp_path: Path, source: Path, out: Path) -> None:
    fresh = tmp_path / "fresh"
    qudata.pack_dataset(source, fresh, config=CONFIG)
    a, b = _tree(fresh), _tree(out)
    orjson.loads(a.pop("manifest.json")).pop("run")
    orjson.loads(b.pop("manifest.json")).pop("run")
    assert a == b


def test_a_planted_pickle_never_runs(tmp_path: Path) -> None:
    source = _input(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    _killed_run(tmp_path, source, out)
    done = _records(tmp_path)
    marker = tmp_path / "marker"
    planted = pickle.dumps(_Plant(marker))
    pickle.loads(planted)  # the payload works: it makes the marker
    assert marker.exists()
    marker.unlink()
    for record in done.glob("*.json"):
        record.write_bytes(planted)
    (done / "write-000000.pickle").write_bytes(planted)
    report = qudata.pack_dataset(source, out, config=CONFIG, resume=True)
    assert not marker.exists()
    assert report.balanced()
    assert "partition 0 recomputed: record did not verify" in report.notes
    _same_as_fresh(tmp_path, source, out)


def test_truncated_and_edited_records_are_computed_again(tmp_path: Path) -> None:
    source = _input(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    _killed_run(tmp_path, source, out)
    done = _records(tmp_path)
    truncated = done / "write-000000.json"
    truncated.write_bytes(truncated.read_bytes()[:100])
    edited = done / "write-000001.json"
    edited.write_bytes(edited.read_bytes().replace(b'"read":', b'"read":1', 1))
    # a record with a matching hash that is not the stage's result
    _, _, body = (done / "write-000002.json").read_bytes().partition(b"\n")
    plain = orjson.loads(body)
    plain["result"] = {"read": "many"}
    body = orjson.dumps(plain)
    (done / "write-000002.json").write_bytes(
        hashlib.sha256(body).hexdigest().encode() + b"\n" + body
    )
    report = qudata.pack_dataset(source, out, config=CONFIG, resume=True)
    assert report.balanced()
    for number in (0, 1, 2):
        assert f"partition {number} recomputed: record did not verify" in report.notes
    _same_as_fresh(tmp_path, source, out)


def _forge(record: Path, change: Any) -> None:
    """Edit a record's body and give it the matching hash (as a forger would)."""
    _, _, body = record.read_bytes().partition(b"\n")
    plain = orjson.loads(body)
    change(plain)
    body = orjson.dumps(plain)
    record.write_bytes(hashlib.sha256(body).hexdigest().encode() + b"\n" + body)


def _more_read(plain: dict[str, Any]) -> None:
    result = plain["result"]
    result["read"] += 1000
    result["inputs"][0]["records"] += 1000
    result["dropped"]["invalid"] = 1000


def _one_line_fewer(done: Path) -> None:
    (part,) = done.parent.glob("jsonl/000001.part")
    data = part.read_bytes()
    head, _, rest = data.partition(b"\n")
    size = orjson.loads(head)[3]  # the raw framing: a head line, then the record's bytes
    part.write_bytes(rest[size:])
    sha = xxhash.xxh3_128_hexdigest(part.read_bytes())  # the digest records give parts
    _forge(
        done / "write-000001.json", lambda plain: plain["files"].update({"jsonl/000001.part": sha})
    )


@pytest.mark.parametrize("forgery", ["account", "part"])
def test_a_forged_record_with_a_matching_hash_is_not_published(
    tmp_path: Path, forgery: str
) -> None:
    source = _input(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    _killed_run(tmp_path, source, out)
    done = _records(tmp_path)
    if forgery == "account":
        _forge(done / "write-000000.json", _more_read)
    else:
        _one_line_fewer(done)
    with pytest.raises(IntegrityError) as caught:
        qudata.pack_dataset(source, out, config=CONFIG, resume=True)
    assert "nothing was published" in str(caught.value)
    assert not out.exists()
