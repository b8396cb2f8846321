"""Map 1's decontamination verdicts reach map 2: the check runs once per document, the
dataset is the one computed without them, and a verdicts file that does not verify is
not used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.config import DecontaminationConfig
from qudata.models import Document
from qudata.quality import decontaminate, verdicts
from qudata.quality.decontaminate import Decontaminator
from qudata.quality.verdicts import (
    VerdictMemo,
    load_verdicts,
    save_verdicts,
    start_recording,
)

DATA = Path(__file__).parent.parent / "data" / "decontamination"
HUMANEVAL = str(DATA / "humaneval_like.jsonl")
GSM = str(DATA / "gsm_like.jsonl.gz")
COPIED = "Intro. Return the sum of two integers a and b, and raise a ValueError when either"


def _docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for n in range(40):
        if n % 5 == 0:
            text = f"{COPIED} one is negative. Note {n}."
        else:
            text = f"Document {n} is about rivers, mountains and the sea, number {n * 7}."
        docs.append({"id": f"d{n}", "text": text})
    docs.append({"id": "dup", "text": docs[1]["text"]})  # a duplicate: dedup keys it
    docs.append(
        {
            "id": "chat",
            "messages": [
                {"role": "user", "content": "Natalia sold clips to 48 of her friends in "
                                            "April, and then she sold half as many"},
                {"role": "assistant", "content": "72"},
            ],
        }
    )  # fmt: skip
    return docs


def _pack(tmp_path: Path, name: str, **config: Any) -> Path:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in _docs()))
    out = tmp_path / name
    settings = {"quality": {"decontamination": {"files": [HUMANEVAL, GSM]}}, **config}
    qudata.pack_dataset(source, out, config=settings, formats=["jsonl"])
    return out


def _files(out: Path) -> dict[str, bytes]:
    found = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    manifest = orjson.loads(found.pop("manifest.json"))
    manifest.pop("run", None)
    found["manifest.json"] = orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS)
    return found


def test_the_check_runs_once_per_document_and_the_dataset_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = Decontaminator._check

    def counted(self: Decontaminator, texts: list[tuple[str, str]]) -> Any:
        calls.append(1)
        return real(self, texts)

    monkeypatch.setattr(Decontaminator, "_check", counted)
    with_memo = _pack(tmp_path, "memo")
    once = len(calls)
    distinct = {orjson.dumps(d.get("text") or d.get("messages")) for d in _docs()}
    assert once == len(distinct) == len(_docs()) - 1  # map 1 checked each text once (the
    # duplicate's verdict is its first copy's); map 2 checked none again

    calls.clear()
    monkeypatch.setattr("qudata.stages.write.load_verdicts", lambda *args: None)
    without = _pack(tmp_path, "plain")
    assert len(calls) == once + len(_docs())  # map 2 checks every document again
    assert _files(with_memo) == _files(without)
    rejects = (with_memo / "rejects.jsonl").read_bytes().decode()
    assert rejects.count('"contaminated"') == 9  # 8 copies of the prompt and the chat
    manifest = orjson.loads((with_memo / "manifest.json").read_bytes())
    assert manifest["counts"]["contaminated"] == {HUMANEVAL: 8, GSM: 1}


def test_without_dedup_map_1_runs_no_check_and_leaves_no_verdicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: list[Any] = []
    real = verdicts.save_verdicts
    monkeypatch.setattr("qudata.stages.scan.save_verdicts", lambda *a: saved.append(1) or real(*a))
    out = _pack(tmp_path, "nodedup", dedup={"method": "none"})
    assert saved == []
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["counts"]["contaminated"] == {HUMANEVAL: 8, GSM: 1}


@pytest.fixture
def check() -> Decontaminator:
    return Decontaminator(DecontaminationConfig(files=[HUMANEVAL, GSM]))


def _doc(text: str) -> Document:
    return Document(id="x", text=text)


def test_verdicts_are_used_only_when_the_file_has_the_sha256_map_1_gave(
    tmp_path: Path, check: Decontaminator
) -> None:
    path = tmp_path / "checks" / "000000.part"
    start_recording([check])
    dropped = check.check(_doc(COPIED))
    kept = check.check(_doc("rivers and mountains"))
    assert dropped is not None and kept is None
    sha = save_verdicts([check], path)
    assert sha is not None
    data = orjson.loads(path.read_bytes())
    assert len(data["decontamination"]) == 2

    # verified: a replayed drop counts as a computed one, and is the same drop
    load_verdicts([check], path, sha)
    before = dict(check.dropped)
    replayed = check.check(_doc(COPIED))
    assert replayed == dropped
    assert check.dropped[HUMANEVAL] == before[HUMANEVAL] + 1

    # a forged verdict (the copy called clean) under another sha256 is not loaded
    forged = {"decontamination": dict.fromkeys(data["decontamination"])}
    path.write_bytes(orjson.dumps(forged))
    load_verdicts([check], path, sha)
    assert check.check(_doc(COPIED)) == dropped

    # with its own sha256 (whoever can write staging can also write that) a malformed
    # verdict is checked again, never trusted as a drop it does not describe
    key = VerdictMemo.key([("text", COPIED)])
    path.write_bytes(orjson.dumps({"decontamination": {key: ["x", {"benchmark": "nope"}]}}))
    load_verdicts([check], path, verdicts.hashlib.sha256(path.read_bytes()).hexdigest())
    assert check.check(_doc(COPIED)) == dropped


def test_nothing_is_recorded_outside_map_1(check: Decontaminator) -> None:
    check.check(_doc(COPIED))
    assert check.memo.take() == {}
    assert decontaminate.Decontaminator is Decontaminator
