"""No format trains on an undesirable completion: the check every format but KTO runs.

A KTO record labelled undesirable (``label: false``, LLaMA-Factory's ``kto_tag``) is a
completion to learn *against*; an SFT or pretraining format would learn it. It is
dropped from those formats as ``undesirable_completion`` (counted and printed per
format), unless ``input.undesirable: keep``.
"""

from __future__ import annotations

from qudata.account import Drop
from qudata.models import Document

__all__ = ["UndesirableCheck"]


class UndesirableCheck:
    """Drop documents labelled undesirable (a format's own check)."""

    name = "undesirable"

    def check(self, doc: Document) -> Drop | None:
        if doc.desirable is False:
            return Drop(
                "undesirable_completion",
                "a KTO record labelled undesirable (label: false): written only by -f kto",
            )
        return None

    def describe(self) -> str:
        return "KTO records labelled undesirable are written only by the kto format"
