"""Document checks: one class each, ``check(doc) -> Drop | None`` and ``describe()``.

:data:`CHECKS` is the registry: a name and the function that makes the check from a
configuration (``None`` when the configuration does not ask for it). :func:`build_checks`
makes them in registry order (the quality gate, decontamination, language), importing
each one's dependencies only when it is used; they run before deduplication, in both
maps of the plan, through :func:`qudata.stages.scan.passes_checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from qudata.account import Drop
from qudata.config import Config
from qudata.models import Document

__all__ = ["CHECKS", "Check", "build_checks", "first_drop"]


class Check(Protocol):
    """Keep a document (``None``) or drop it with a reason; ``describe()`` is for the card."""

    name: str

    def check(self, doc: Document) -> Drop | None: ...
    def describe(self) -> str: ...


def _quality(cfg: Config) -> Check | None:
    from qudata.quality.gate import QualityGate

    gate = QualityGate(cfg.quality, with_components=cfg.quality.score_components)
    return gate if gate.active else None


def _decontamination(cfg: Config) -> Check | None:
    if cfg.quality.decontamination is None:
        return None
    from qudata.quality.decontaminate import Decontaminator

    return Decontaminator(cfg.quality.decontamination)


def _language(cfg: Config) -> Check | None:
    fill = "language" in cfg.output.add_metadata
    if not (cfg.quality.languages or fill):
        return None
    from qudata.quality.language import LanguageCheck

    return LanguageCheck(cfg.quality, fill=fill)


#: Every check by name, in the order they run.
CHECKS: dict[str, Callable[[Config], Check | None]] = {
    "quality": _quality,
    "decontamination": _decontamination,
    "language": _language,
}


def build_checks(cfg: Config) -> list[Check]:
    """The checks ``cfg`` asks for, in :data:`CHECKS` order."""
    return [check for make in CHECKS.values() if (check := make(cfg)) is not None]


def first_drop(checks: Sequence[Check], doc: Document) -> Drop | None:
    """The first drop of ``checks`` (in order), or ``None``: the one runner of the
    checks, for the run's checks and for a format's own (see
    :meth:`qudata.pack.base.Formatter.checks`)."""
    for check in checks:
        drop = check.check(doc)
        if drop is not None:
            return drop
    return None
