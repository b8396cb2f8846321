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
