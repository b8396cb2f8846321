"""``qudata stats`` and ``pack --dry-run``: what survives at several quality thresholds.

Runs ``pack``'s own driver (:func:`qudata.driver.tally`): map 1 (read, normalise,
checks, dedup keys), the global dedup step, then a tally per partition of the documents and
tokens that a ``min_quality_score`` of each threshold would keep; so ``stats`` and
``pack`` never disagree. Writes nothing but its spill files, in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qudata.config import Config, load_config, parse_size
from qudata.driver import tally
from qudata.engines import job_executor
from qudata.errors import OutputError
from qudata.executor import Quiet
from qudata.io.sources import Source, expand_inputs
from qudata.io.uri import configure, is_uri
from qudata.plan.job import Job
from qudata.plan.partitions import plan_partitions
from qudata.quality.tokens import get_token_counter
from qudata.stages.context import forget
from qudata.stages.tally import THRESHOLDS

__all__ = ["THRESHOLDS", "InputStats", "collect_stats"]


@dataclass(slots=True)
class InputStats:
    """Documents and tokens kept at each threshold; unscored documents are kept at every one."""

    tokenizer: str
    tokens_exact: bool
    read: int = 0
    invalid: int = 0
    dropped: Counter[str] = field(default_factory=Counter)  # by the checks
    duplicates: Counter[str] = field(default_factory=Counter)
    unscored: int = 0
    documents: dict[float, int] = field(default_factory=lambda: dict.fromkeys(THRESHOLDS, 0))
    tokens: dict[float, int] = field(default_factory=lambda: dict.fromkeys(THRESHOLDS, 0))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "read": self.read,
            "invalid": self.invalid,
            "duplicates": dict(sorted(self.duplicates.items())),
            "unscored": self.unscored,
            "tokenizer": self.tokenizer,
            "tokens_exact": self.tokens_exact,
            "thresholds": [
                {"min_quality_score": t, "documents": self.documents[t], "tokens": self.tokens[t]}
                for t in THRESHOLDS
            ],
        }
        if self.dropped:
            out["dropped"] = dict(sorted(self.dropped.items()))
        return out


def collect_stats(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    config: Config | dict[str, Any] | str | None = None,
) -> InputStats:
    """Figures for ``inputs`` under ``config`` (its input, quality and dedup sections)."""
    cfg = load_config(config)
    # the tally applies each threshold itself
    cfg = cfg.model_copy(
        update={"quality": cfg.quality.model_copy(update={"min_quality_score": None})}
    )
    counter = get_token_counter(cfg.quality.tokenizer)
    result = InputStats(
        tokenizer=counter.name if counter else "none",
        tokens_exact=bool(counter and counter.exact),
    )
    configure(cfg.storage.options)
    staging = cfg.storage.staging
    local = staging if staging is not None and not is_uri(staging) else None
    folder = Path(tempfile.mkdtemp(prefix="qudata-stats-", dir=local)).resolve()
    executor = None
    try:
        size = cfg.engine.partition_size  # pack's partitions
        pieces = plan_partitions(_sources(inputs, cfg), None if size is None else parse_size(size))
        job = Job(cfg, folder, pieces)
        executor = _executor(job)
        total = tally(job, executor, Quiet())
    finally:
        if executor is not None:
            executor.close()
        forget()
        shutil.rmtree(folder, ignore_errors=True)
    result.read, result.invalid, result.unscored = total.read, total.invalid, total.unscored
    result.dropped, result.duplicates = total.dropped, total.duplicates
    result.documents = dict(zip(THRESHOLDS, total.documents, strict=True))
    result.tokens = dict(zip(THRESHOLDS, total.tokens, strict=True))
    return result


def _sources(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], cfg: Config
) -> list[Source]:
    """The inputs as ``pack`` walks them (URIs through fsspec, Ray's listing on Ray)."""
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    arguments = [os.fspath(item) for item in inputs]
    if cfg.engine.name == "ray" or any(is_uri(a) for a in arguments):
        from qudata.engines.ray_inputs import expand_sources  # imports no Ray

        return expand_sources(arguments).sources
    return expand_inputs(arguments)


def _executor(job: Job) -> Any:
    """``pack``'s executor for the tally; on Ray, the staging on ``storage.staging`` when
    it is an object-storage prefix (nodes that share no folder), else a folder every node
    must see (refused in one line otherwise)."""

    def unshared(problem: str) -> OutputError:
        return OutputError(
            f"qudata stats: its staging folder {job.staging} is not shared by the nodes of "
            f"the Ray cluster: {problem}; set storage.staging to a folder that every node "
            "mounts at the same path, or to an object-storage prefix (s3://bucket/tmp)"
        )

    return job_executor(job, str(job.staging), unshared=unshared)
