"""Accuracy and speed of qudata's language identification on real multilingual text.

Real translated text with reliable labels: the message catalogs that Debian installs
(/usr/share/locale/<lang>/LC_MESSAGES/*.mo: coreutils, bash, apt, ... help texts and
messages, translated by people). Every translated message of 200+ characters is a
sample of its folder's language, and its English original (the msgid) a sample of
English. Messages that are mostly option lists or format strings (under 60% letters and
spaces) are left out. A sample counts as right when the detected ISO 639-1 code is its
language.

    PYTHONPATH=src python bench/language_accuracy.py [--per-language 300] [--raw]

``--raw`` scores py3langid's own top label instead of qudata's (ISO 639-1, the
probabilities of one code's labels added up).
"""

from __future__ import annotations

import argparse
import gettext
import random
import time
from pathlib import Path

from qudata.quality.language import LanguageDetector
from qudata.quality.language_codes import iso639_1

LANGUAGES = ["de", "fr", "es", "it", "pt", "nl", "pl", "ru", "ja", "zh_CN", "zh_TW", "ko", "th"]
LOCALE = Path("/usr/share/locale")


def prose(text: str) -> str | None:
    """``text`` with whitespace collapsed, if it is 200+ characters of mostly words."""
    para = " ".join(text.split())
    letters = sum(c.isalpha() or c.isspace() for c in para)
    return para if len(para) >= 200 and letters >= 0.6 * len(para) else None


def catalog_pairs(language: str) -> list[tuple[str, str]]:
    """``(English original, translation)`` of every long message of a language."""
    pairs = []
    for mo in sorted((LOCALE / language / "LC_MESSAGES").glob("*.mo")):
        try:
            with open(mo, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # a catalog in another codec
            print(f"skipped {mo}: {exc}")
            continue
        for msgid, msgstr in catalog.items():
            if isinstance(msgid, tuple):  # plural forms: (msgid, n)
                msgid = msgid[0]
            original, translated = prose(str(msgid)), prose(str(msgstr))
            if original and translated and original != translated:
                pairs.append((original, translated))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-language", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--raw", action="store_true", help="py3langid's own top label (before normalisation)"
    )
    args = ap.parse_args()
    rng = random.Random(args.seed)
    samples: dict[str, list[str]] = {"en": []}
    for code in LANGUAGES:
        pairs = catalog_pairs(code)
        rng.shuffle(pairs)
        samples[code] = [t for _, t in pairs[: args.per_language]]
        samples["en"].extend(o for o, _ in pairs[: args.per_language // len(LANGUAGES) + 1])
    samples["en"] = samples["en"][: args.per_language]
    detector = LanguageDetector()
    right = total = 0
    seconds = 0.0
    print(f"{'language':<9} {'paragraphs':>10} {'accuracy':>9}  most common mistakes")
    for code, texts in samples.items():
        t0 = time.perf_counter()
        if args.raw:
            found = [str(detector._identifier.classify(t[:2000])[0]) for t in texts]
        else:
            found = [detector.detect(t)[0] for t in texts]
        seconds += time.perf_counter() - t0
        expected = iso639_1(code)
        ok = sum(f == expected for f in found)
        wrong: dict[str, int] = {}
        for f in found:
            if f != expected:
                wrong[f] = wrong.get(f, 0) + 1
        worst = ", ".join(f"{k} {v}" for k, v in sorted(wrong.items(), key=lambda kv: -kv[1])[:3])
        print(f"{code:<9} {len(texts):>10} {ok / max(1, len(texts)):>9.1%}  {worst}")
        right, total = right + ok, total + len(texts)
    print(f"{'all':<9} {total:>10} {right / max(1, total):>9.1%}")
    print(f"throughput: {total / seconds:,.0f} paragraphs/s (one core, model loaded)")


if __name__ == "__main__":
    main()
