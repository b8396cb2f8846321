"""The quality gate: drop documents under ``quality.min_quality_score`` before formatting.

A document without a score follows ``quality.missing_score``: ``keep`` it (the
default: no score is not a bad score), ``drop`` it (``missing_quality_score``),
or ``score`` it with the heuristic scorer, which then fills ``quality_score``.
"""

from __future__ import annotations

from qudata.account import Drop
from qudata.config import QualityConfig
from qudata.models import Document

__all__ = ["QualityGate"]


class QualityGate:
    """Keep or drop one document by its quality score.

    Example::

        gate = QualityGate(QualityConfig(min_quality_score=0.7))
        gate.check(Document(text="...", quality_score=0.5))   # Drop("low_quality", ...)
    """

    name = "quality"

    def __init__(self, config: QualityConfig, *, with_components: bool = False) -> None:
        self.min_score = config.min_quality_score
        self.missing = config.missing_score
        self.with_components = with_components

    @property
    def active(self) -> bool:
        return self.min_score is not None or self.missing != "keep"

    def describe(self) -> str:
        parts = []
        if self.min_score is not None:
            parts.append(f"documents with a quality_score under {self.min_score} were dropped")
        if self.missing == "drop":
            parts.append("documents without a quality_score were dropped")
        elif self.missing == "score":
            parts.append("documents without a quality_score were scored by qudata's heuristic")
        return "; ".join(parts) or "no quality filter"

    def check(self, doc: Document) -> Drop | None:
        if doc.quality_score is None:
            if self.missing == "drop":
                return Drop("missing_quality_score", "the document has no quality_score")
            if self.missing == "score":
                from qudata.quality.score import score_text

                result = score_text(doc.text)
                doc.quality_score = result.score
                if self.with_components:
                    doc.metadata["quality_components"] = dict(result.components)
        if (
            self.min_score is not None
            and doc.quality_score is not None
            and doc.quality_score < self.min_score
        ):
            return Drop("low_quality", f"quality_score {doc.quality_score:.4g} < {self.min_score}")
        return None
