"""One run as data: the configuration, the partitions and what the global steps decided.

A :class:`Job` is what every stage function receives, in this process, a worker
process or a Ray task: it is small, picklable, and holds no documents. The paths
under the staging folder where stages leave their part files are named here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qudata.config import Config
from qudata.plan.mix import MixPlan
from qudata.plan.partitions import Partition

__all__ = ["Job"]


@dataclass
class Job:
    """Everything the stages need to know about one run.

    ``first_lines``, ``skip``, ``schema``, ``derived``, ``content`` and ``mix`` are
    filled by the driver after map 1 (the line each partition starts at, partitions of
    an input that stopped before them, the learnt metadata schema as JSON, the repeat
    counts of derived ids, the hashes of the bytes read, the mix plan).
    """

    cfg: Config
    staging: Path
    partitions: list[Partition]
    shuffle_buckets: int = 16
    first_lines: list[int] = field(default_factory=list)
    skip: set[int] = field(default_factory=set)
    schema: dict[str, Any] | None = None
    mix: MixPlan | None = None
    mix_source: dict[str, int] = field(default_factory=dict)  # input name -> mix source
    resume: bool = False  # take the records of a killed run (see qudata.stages.resume)
    #: per partition, the derived ids given out before it (of bases it gives out too)
    derived: dict[int, dict[str, int]] = field(default_factory=dict)
    #: per partition, the sha256 of each of its files' bytes as the scan read them (the
    #: write pass reads the same bytes or fails), and the sha256 of all of them
    content: list[list[str]] = field(default_factory=list)
    content_sha256: str = ""
    #: per partition, the sha256 of the verdicts map 1's checks left for map 2 (or None)
    verdicts: list[str | None] = field(default_factory=list)

    @property
    def parts(self) -> Path:
        """The stages' part files (removed before the dataset is published)."""
        return self.staging / ".parts"

    @property
    def dedup_dir(self) -> Path:
        return self.parts / "dedup"

    def part_file(self, kind: str, partition: int) -> Path:
        """The part file of ``kind`` (a format name, ``rejects``, ``mix``) of a partition."""
        return self.parts / kind / f"{partition:06d}.part"
