"""Language identification: metadata.language filled, other languages dropped, und kept."""

# ruff: noqa: RUF001  (Cyrillic text is the point)

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.config import load_config
from qudata.models import Document

pytest.importorskip("py3langid")

from qudata.quality.language import LanguageCheck

TEXTS = {
    "en": "The river flows slowly through the old town, and in the evening people walk "
    "along its banks to watch the boats come home.",
    "de": "Der Fluss fließt langsam durch die Altstadt, und am Abend gehen die Menschen "
    "an seinem Ufer spazieren, um die Boote heimkehren zu sehen.",
    "fr": "La rivière coule lentement à travers la vieille ville, et le soir les gens se "
    "promènent sur ses rives pour regarder rentrer les bateaux.",
    "es": "El río fluye lentamente por el casco antiguo, y por la tarde la gente pasea "
    "por sus orillas para ver volver los barcos.",
    "it": "Il fiume scorre lentamente attraverso la città vecchia, e la sera la gente "
    "passeggia lungo le sue rive per guardare le barche che tornano.",
    "pt": "O rio corre devagar pela cidade velha, e à noite as pessoas passeiam pelas "
    "suas margens para ver os barcos voltarem para casa.",
    "nl": "De rivier stroomt langzaam door de oude stad, en 's avonds wandelen de mensen "
    "langs de oevers om de boten thuis te zien komen.",
    "pl": "Rzeka płynie powoli przez stare miasto, a wieczorem ludzie spacerują wzdłuż "
    "jej brzegów, aby patrzeć, jak łodzie wracają do domu.",
    "ru": "Река медленно течёт через старый город, а вечером люди гуляют по её берегам, "
    "чтобы посмотреть, как возвращаются лодки.",
    "ja": "川は古い町の中をゆっくりと流れ、"
    "夕方になると人々は舟が帰ってくるのを見るために岸辺を散歩します。",
}


@pytest.fixture(scope="module")
def detect() -> LanguageCheck:
    return LanguageCheck(load_config({}).quality, fill=True)


@pytest.mark.parametrize("code", sorted(TEXTS))
def test_ten_languages_are_identified(detect: LanguageCheck, code: str) -> None:
    doc = Document(text=TEXTS[code])
    assert detect.language(doc) == code
    assert doc.metadata["language"] == code


def test_a_stated_language_is_kept_and_an_unsure_one_is_und(detect: LanguageCheck) -> None:
    doc = Document(text=TEXTS["de"], metadata={"language": "EN"})
    assert detect.language(doc) == "en"  # the document's own word, normalised
    before = detect.warnings["language_undetermined"]
    unsure = Document(text="42 !!")
    assert detect.language(unsure) == "und"
    assert detect.warnings["language_undetermined"] == before + 1


def test_pack_keeps_the_wanted_languages_and_balances(tmp_path: Path) -> None:
    docs: list[dict[str, Any]] = [{"id": c, "text": t} for c, t in sorted(TEXTS.items())]
    docs.append({"id": "unsure", "text": "12 34"})
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    config = {"quality": {"languages": ["en", "de"]}, "output": {"add_metadata": ["language"]}}
    out = tmp_path / "out"
    report = qudata.pack_dataset(source, out, config=config, formats=["jsonl"])
    assert report.balanced()
    assert report.dropped == {"wrong_language": 8}
    assert report.warnings == {"language_undetermined": 1}
    rows = [orjson.loads(x) for x in (out / "jsonl" / "train-00000-of-00001.jsonl").read_bytes()
            .splitlines()]  # fmt: skip
    assert [r["metadata"]["language"] for r in rows] == ["de", "en", "und"]
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["counts"]["warnings"] == {"language_undetermined": 1}


def test_languages_must_be_codes() -> None:
    from qudata.errors import ConfigError

    with pytest.raises(ConfigError, match="ISO 639-1"):
        load_config({"quality": {"languages": ["English"]}})


# --- ISO 639-1 codes ---------------------------------------------------------------

from qudata.quality.language_codes import iso639_1  # noqa: E402

CHINESE = {
    # py3langid's own top label for each: wuu, yue, zh (Mandarin in every case but one)
    "wuu": "侬好，今朝天气老好额。",
    "yue": "我哋今日去边度食饭？",
    "zh": "今天天气很好，我们去公园散步吧。",
}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        *[(c, "zh") for c in ("wuu", "yue", "cmn", "gan", "hak", "nan", "zho", "chi", "lzh")],
        ("zh-Hant-TW", "zh"), ("zh_CN", "zh"), ("ZH", "zh"), ("en-US", "en"),
        ("eng", "en"), ("deu", "de"), ("ger", "de"), ("fre", "fr"), ("jpn", "ja"),
        ("arz", "ar"), ("ary", "ar"), ("arb", "ar"), ("pes", "fa"), ("zsm", "ms"),
        ("ltg", "lv"), ("sdh", "ku"), ("uzs", "uz"), ("fuv", "ff"), ("gug", "gn"),
        ("kik", "ki"), ("nob", "nb"), ("nno", "nn"), ("nor", "no"), ("iw", "he"),
        ("in", "id"),
        # no ISO 639-1 code: kept
        ("kab", "kab"), ("grc", "grc"), ("hbo", "hbo"), ("pcm", "pcm"), ("gom", "gom"),
        ("und", "und"), ("zxx", "zxx"),
    ],
)  # fmt: skip
def test_codes_are_normalised_to_iso_639_1(code: str, expected: str) -> None:
    assert iso639_1(code) == expected


def test_every_label_of_the_detector_is_iso_639_1_or_has_no_such_code() -> None:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    labels = set(LanguageIdentifier.from_model_file(MODEL_FILE).nb_classes)
    kept = {iso639_1(label) for label in labels if len(iso639_1(label)) != 2}
    # languages without an ISO 639-1 code (and zxx, no linguistic content)
    assert kept == {"ace", "bcl", "crh", "ext", "gcf", "gcr", "gom", "grc", "guw", "hbo",
                    "kab", "lij", "nso", "pcm", "vec", "zxx"}  # fmt: skip


def test_chinese_the_model_calls_wu_or_cantonese_is_zh(detect: LanguageCheck) -> None:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    raw = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    for label, text in CHINESE.items():
        assert raw.classify(text)[0] == label  # what the model says by itself
        code, probability = detect.detector.detect(text)
        assert code == "zh" and probability > 0.99  # zh, wuu and yue added up


def test_languages_zh_keeps_every_chinese_record(tmp_path: Path) -> None:
    docs: list[dict[str, Any]] = [{"id": label, "text": t} for label, t in CHINESE.items()]
    docs.append({"id": "stated", "text": TEXTS["ja"], "metadata": {"language": "zh-TW"}})
    docs.append({"id": "english", "text": TEXTS["en"]})
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    for wanted in (["zh"], ["cmn"]):
        config = {"quality": {"languages": wanted}, "output": {"add_metadata": ["language"]}}
        out = tmp_path / wanted[0]
        report = qudata.pack_dataset(source, out, config=config, formats=["jsonl"])
        assert report.dropped == {"wrong_language": 1}
        rows = [orjson.loads(x) for x in (out / "jsonl" / "train-00000-of-00001.jsonl")
                .read_bytes().splitlines()]  # fmt: skip
        assert [(r["text"], r["metadata"]["language"]) for r in rows] == [
            *[(t, "zh") for t in CHINESE.values()], (TEXTS["ja"], "zh-TW"),
        ]  # fmt: skip
