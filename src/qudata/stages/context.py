"""What a stage builds once per process and reuses for every partition of a job.

Tokenizers and the checks (a decontamination index can take seconds
to build) are made on first use in each process, worker or Ray task, and kept while
the job runs; everything that counts (formatters, their statistics) is made fresh per
partition by the stages themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qudata.io.uri import remember_listed
from qudata.plan.job import Job
from qudata.quality.checks import Check, build_checks
from qudata.quality.tokens import CountCache, get_token_counter

__all__ = ["StageContext", "context"]


@dataclass
class StageContext:
    checks: list[Check]
    counter: CountCache | None


_CONTEXTS: dict[str, StageContext] = {}


def context(job: Job) -> StageContext:
    """The context of ``job`` in this process (made on first use)."""
    remember_listed(job.remote)  # this run's listing: no metadata request per remote file
    key = str(job.staging)
    found = _CONTEXTS.get(key)
    if found is None:
        _CONTEXTS.clear()  # one job at a time per process
        cfg = job.cfg
        base: Any = get_token_counter(cfg.quality.tokenizer, cfg.quality.token_threads)
        found = _CONTEXTS[key] = StageContext(
            checks=build_checks(cfg),
            counter=None if base is None else CountCache(base),
        )
    return found


def forget() -> None:
    """Drop every cached context (the job ended)."""
    _CONTEXTS.clear()
