"""Language identification (``output.add_metadata: [language]``, ``quality.languages``).

The detector is py3langid (extra ``qudata[language]``), which ships its model: nothing
is downloaded. It reads the first :data:`SAMPLE_CHARS` characters of a text (of every
message's content for a conversation) and gives an ISO 639-1 code with a probability:
the detector's labels are normalised to ISO 639-1 (:mod:`qudata.quality.language_codes`:
its ``wuu`` and ``yue`` are ``zh``, ``arz`` and ``ary`` are ``ar`` ...) and the
probabilities of the labels of one code are added up (a Mandarin text that the model
splits between ``zh`` and ``wuu`` is ``zh`` with their sum). Under
``quality.min_language_confidence`` the language is ``und`` (undetermined), and the
document is kept with the warning ``language_undetermined``. A document that states its
own ``language`` keeps it: the detector only fills what is missing. Codes are compared
after the same normalisation, so ``quality.languages: [zh]`` keeps a document that
states ``zh-TW`` or ``cmn``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from qudata.account import Drop
from qudata.config import QualityConfig
from qudata.errors import MissingExtraError
from qudata.models import Document
from qudata.quality.language_codes import iso639_1

__all__ = ["SAMPLE_CHARS", "UNDETERMINED", "LanguageCheck", "LanguageDetector"]

SAMPLE_CHARS = 2_000  # enough for a paragraph-level guess; 5x faster than 10,000
UNDETERMINED = "und"


class LanguageDetector:
    """``detect(text) -> (code, probability)``, with the model loaded once."""

    def __init__(self) -> None:
        try:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier
        except ImportError:
            raise MissingExtraError(
                "language", "py3langid", feature="Language identification"
            ) from None
        self._identifier: Any = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        labels = [iso639_1(str(label)) for label in self._identifier.nb_classes]
        self._codes = sorted(set(labels))
        self._groups = np.array([self._codes.index(code) for code in labels], dtype=np.intp)

    def detect(self, text: str) -> tuple[str, float]:
        """The most probable ISO 639-1 code (the labels of one code added up)."""
        sample = text[:SAMPLE_CHARS]
        decide = getattr(self._identifier, "_decide", None)
        if decide is None:  # another py3langid: its public ranking, slower
            totals: dict[str, float] = {}
            for label, probability in self._identifier.rank(sample):
                code = iso639_1(str(label))
                totals[code] = totals.get(code, 0.0) + float(probability)
            best = max(totals, key=totals.__getitem__)
            return best, min(1.0, totals[best])
        # one probability per model column (an aliased column holds 0): summed per code
        sums = np.bincount(self._groups, weights=decide(sample), minlength=len(self._codes))
        i = int(sums.argmax())
        return self._codes[i], min(1.0, float(sums[i]))


class LanguageCheck:
    """Fills ``metadata.language`` (when asked) and keeps only ``quality.languages``."""

    name = "language"

    def __init__(self, config: QualityConfig, *, fill: bool) -> None:
        self.languages = {iso639_1(c) for c in config.languages} if config.languages else None
        self.min_confidence = config.min_language_confidence
        self.fill = fill
        self.detector = LanguageDetector()
        self.warnings: Counter[str] = Counter()

    def language(self, doc: Document) -> str:
        """The document's own ``language``, else the detected one (``und`` when unsure),
        as ISO 639-1."""
        own = doc.metadata.get("language")
        if isinstance(own, str) and own.strip():
            return iso639_1(own)
        if doc.messages is None:
            text = doc.text
        else:
            text = "\n".join(str(m.get("content") or "") for m in doc.messages)
        code, probability = self.detector.detect(text)
        if probability < self.min_confidence:
            self.warnings["language_undetermined"] += 1
            code = UNDETERMINED
        if self.fill:
            doc.metadata["language"] = code
        return code

    def describe(self) -> str:
        if self.languages is None:
            return "the language of each document was identified (py3langid)"
        return f"documents not in {', '.join(sorted(self.languages))} were dropped"

    def check(self, doc: Document) -> Drop | None:
        code = self.language(doc)
        if self.languages is None or code in self.languages or code == UNDETERMINED:
            return None
        wanted = ", ".join(sorted(self.languages))
        return Drop("wrong_language", f"language {code} is not one of {wanted}")
