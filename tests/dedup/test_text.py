"""What documents are compared on: shingles by words, or by characters for unspaced scripts."""

# ruff: noqa: RUF001  (CJK punctuation is the point)

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import orjson
import pytest

import qudata
from qudata.config import DedupConfig
from qudata.dedup import keys as dedup_keys
from qudata.dedup.keys import KeyWriter
from qudata.dedup.text import exact_key, normalize_text, shingles, text_shingles

pytest.importorskip("rensa")

#: 500 common Chinese characters, in frequency order (a fixed list of real characters).
CHARS = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过"
    "家学对可里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见"
    "经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话"
    "儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真"
    "听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立"
    "马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制"
    "解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎"
    "元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武"
    "半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱"
    "党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯"
)
PUNCT = "，。、；：！？"


def chinese(r: random.Random, length: int) -> str:
    out: list[str] = []
    while len(out) < length:
        out.append(r.choice(CHARS))
        if r.random() < 0.08:
            out.append(r.choice(PUNCT))
    return "".join(out) + "。"


def one_character_edit(r: random.Random, text: str) -> str:
    """Replace, insert or delete one character (never the final full stop)."""
    i, c = r.randrange(len(text) - 1), r.choice(CHARS)
    while c == text[i]:
        c = r.choice(CHARS)
    kind = r.randrange(3)
    if kind == 0:
        return text[:i] + c + text[i + 1 :]
    if kind == 1:
        return text[:i] + c + text[i:]
    return text[:i] + text[i + 1 :]


def test_latin_text_keeps_its_word_shingles() -> None:
    text = normalize_text("The quick brown fox jumps over the lazy dog, café au lait.")
    words = text.split(" ")
    assert shingles(text, 5) == [" ".join(words[i : i + 5]) for i in range(len(words) - 4)]
    # a Chinese name inside an English paragraph does not change how it is shingled
    text = normalize_text("A report on 北京 and its suburbs, written for the city council.")
    assert shingles(text, 5)[0] == "a report on 北京 and"


def test_unspaced_text_is_shingled_by_characters() -> None:
    assert shingles(normalize_text("今天 天气很好"), 3) == ["今天天", "天天气", "天气很", "气很好"]
    assert text_shingles(["今天"], 5) == ["今天"]  # shorter than a shingle: whole
    japanese = normalize_text("川は古い町の中をゆっくりと流れる")
    assert shingles(japanese, 5)[:2] == ["川は古い町", "は古い町の"]
    thai = normalize_text("ภาษาไทยเขียนติดกัน")
    assert shingles(thai, 5)[0] == "ภาษาไ"
    # mostly Chinese with some Latin: characters too
    assert shingles(normalize_text("使用 Python 编写程序很方便"), 4)[0] == "使用py"


def _pack_near(tmp_path: Path, rows: list[dict[str, str]]) -> tuple[object, list[dict]]:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    out = tmp_path / "out"
    config = {
        "quality": {"tokenizer": "none"},
        "dedup": {"method": "near"},
        "pack": {"formats": ["jsonl"]},
    }
    report = qudata.pack_dataset([str(source)], out, config=config)
    rejects = [orjson.loads(x) for x in (out / "rejects.jsonl").read_bytes().splitlines()]
    return report, rejects


def test_one_character_edits_of_chinese_records_are_found(tmp_path: Path) -> None:
    r = random.Random(24)
    originals = [chinese(r, r.randint(80, 400)) for _ in range(50)]
    edits = [one_character_edit(r, t) for t in originals]
    assert all(e != t for e, t in zip(edits, originals, strict=True))
    rows = [{"id": f"o{i}", "text": t} for i, t in enumerate(originals)]
    rows += [{"id": f"e{i}", "text": t} for i, t in enumerate(edits)]
    # distinct documents on the same subject, sharing many characters: all kept
    rows += [{"id": f"d{i}", "text": chinese(r, 200)} for i in range(50)]
    report, rejects = _pack_near(tmp_path, rows)
    found = {x["id"]: x["duplicate_of"] for x in rejects}
    assert set(found) <= {f"e{i}" for i in range(50)}  # no original or distinct one removed
    assert all(found[e] == "o" + e[1:] for e in found)
    assert len(found) >= 45, len(found)  # >= 90% (50 of 50 at these lengths)
    assert report.dropped == {"duplicate_near": len(found)}


def test_signatures_do_not_depend_on_how_the_batch_is_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = random.Random(5)
    texts = [chinese(r, 300) for _ in range(20)] + [f"word{i} " * 50 for i in range(20)]
    items = [(i, f"id{i}", t) for i, t in enumerate(texts)]

    def signatures(directory: Path) -> np.ndarray:
        writer = KeyWriter(directory, 0, DedupConfig(method="near"))
        writer.add_batch(items)
        writer.close()
        return np.fromfile(directory / "000000.sig", dtype=np.uint32)

    whole = signatures(tmp_path / "whole")
    monkeypatch.setattr(dedup_keys, "SHINGLES_PER_CALL", 500)  # several rensa calls
    assert np.array_equal(signatures(tmp_path / "split"), whole)


def test_exact_keys_of_chinese_text_ignore_case_and_spacing_only() -> None:
    assert exact_key("今天 天气很好") == exact_key("今天\u3000天气很好")
    assert exact_key("今天天气很好") != exact_key("今天 天气很好")  # as for Latin words
