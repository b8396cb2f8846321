"""Document checks: one class each, ``check(doc) -> Drop | None`` and ``describe()``.

:func:`build_checks` makes the checks a configuration asks for, in the order they run
(after the quality gate, before deduplication), importing each one's dependencies only
when it is used.
"""

from __future__ import annotations

from typing import Protocol

from qudata.config import Config
from qudata.models import Document
from qudata.quality.report import Drop

__all__ = ["Check", "build_checks"]


class Check(Protocol):
    """Keep a document (``None``) or drop it with a reason; ``describe()`` is for the card."""

    name: str

    def check(self, doc: Document) -> Drop | None: ...
    def describe(self) -> str: ...


def build_checks(cfg: Config) -> list[Check]:
    """``quality.decontamination``, then language identification (``quality.languages``,
    ``output.add_metadata: [language]``)."""
    checks: list[Check] = []
    if cfg.quality.decontamination is not None:
        from qudata.quality.decontaminate import Decontaminator

        checks.append(Decontaminator(cfg.quality.decontamination))
    fill = "language" in cfg.output.add_metadata
    if cfg.quality.languages or fill:
        from qudata.quality.language import LanguageCheck

        checks.append(LanguageCheck(cfg.quality, fill=fill))
    return checks
