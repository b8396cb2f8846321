"""The mix's survey, per partition: the tokens of each source's documents that were kept
by every check and by deduplication (see :mod:`qudata.plan.mix`)."""

from __future__ import annotations

import orjson

from qudata.plan.job import Job
from qudata.plan.mix import MixPlanner, SourcePlan

__all__ = ["merge_surveys", "survey_partition"]


def survey_partition(job: Job, index: int) -> list[SourcePlan]:
    """Each mix source's token buckets over this partition's kept documents."""
    from qudata.dedup.step import read_verdicts  # numpy: imported when used

    mix = job.cfg.mix
    assert mix is not None
    planner = MixPlanner([s.weight for s in mix.sources], seed=mix.seed)
    rows = orjson.loads(job.part_file("mix", index).read_bytes())
    verdicts = read_verdicts(job.dedup_dir, index) if job.cfg.dedup.method != "none" else {}
    for position, source, doc_id, tokens in rows:  # plain JSON written by the scan
        verdict = verdicts.get(position)
        if verdict is None or verdict.duplicate_of is None:
            planner.observe(source, doc_id, tokens)
    return planner.sources


def merge_surveys(planner: MixPlanner, surveys: list[list[SourcePlan]]) -> MixPlanner:
    """Add every partition's survey to ``planner`` (sums: the order does not matter)."""
    for survey in surveys:
        for total, part in zip(planner.sources, survey, strict=True):
            total.available_tokens += part.available_tokens
            total.available_documents += part.available_documents
            total.buckets = [a + b for a, b in zip(total.buckets, part.buckets, strict=True)]
    return planner
