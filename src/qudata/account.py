"""The account of a run: every document read is written or dropped with a reason.

``read == accepted + sum(dropped)`` at the top level, and for every format
``accepted == documents + sum(dropped)``. :class:`Drop` is the verdict a step
returns for a document it will not pass on.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "Drop",
    "FileStats",
    "FormatStats",
    "Observations",
    "RunReport",
    "add_bounded",
    "packing_summary",
]


@dataclass(frozen=True, slots=True)
class Drop:
    """A document is not passed on: a stable snake_case ``reason`` and a human ``detail``."""

    reason: str
    detail: str = ""
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class FileStats:
    """One output file."""

    path: str
    split: str
    documents: int = 0
    records: int = 0
    bytes: int = 0
    sha256: str = ""
    tokens: int = 0
    #: packed formats: ``seq_len``, ``strategy``, ``rows`` and ``fill`` (rows per tenth of
    #: ``seq_len`` filled) of this file; see :func:`packing_summary`
    packing: dict[str, Any] | None = None

    def as_dict(self, *, with_tokens: bool) -> dict[str, Any]:
        out = {
            "path": self.path,
            "split": self.split,
            "documents": self.documents,
            "records": self.records,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "tokens": self.tokens if with_tokens else None,
        }
        if self.packing is not None:
            out["packing"] = self.packing
        return out


def packing_summary(files: list[FileStats]) -> dict[str, Any] | None:
    """Per split, from the files' ``packing``: ``rows``, ``tokens``, the lower bound
    ``ceil(tokens / seq_len)``, ``lower_bound_l2`` (the rows no packing can do with
    fewer of: :func:`qudata.pack.bfd.rows_lower_bound`), ``packing_efficiency``
    (``tokens / (rows * seq_len)``) and the ``fill`` distribution. ``None`` when no file
    is packed."""
    splits: dict[str, dict[str, Any]] = {}
    for file in files:
        if file.packing is None:
            continue
        seq_len = file.packing["seq_len"]
        split = splits.setdefault(
            file.split,
            {
                "seq_len": seq_len,
                "strategy": file.packing["strategy"],
                "rows": 0,
                "tokens": 0,
                "fill": [0] * len(file.packing["fill"]),
                "bound": file.packing.get("split_lower_bound_l2", 0),
            },
        )
        split["rows"] += file.packing["rows"]
        split["tokens"] += file.tokens
        split["fill"] = [a + b for a, b in zip(split["fill"], file.packing["fill"], strict=True)]
    if not splits:
        return None
    summary = {}
    for name, split in sorted(splits.items()):
        seq_len, rows, tokens = split["seq_len"], split["rows"], split["tokens"]
        lower_bound = -(-tokens // seq_len)
        summary[name] = {
            "seq_len": seq_len,
            "strategy": split["strategy"],
            "rows": rows,
            "tokens": tokens,
            "lower_bound": lower_bound,
            "lower_bound_l2": max(lower_bound, split["bound"]),
            "packing_efficiency": round(tokens / (rows * seq_len), 6) if rows else None,
            "fill": split["fill"],
        }
    return summary


@dataclass(slots=True)
class FormatStats:
    """What one format wrote and dropped."""

    documents: int = 0
    records: int = 0
    bytes: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    files: list[FileStats] = field(default_factory=list)
    tokens: int = 0
    tokenizer: str = "none"
    #: the tokenizer's identity (``TiktokenCounter.identity``): encoding and rank file
    #: sha256, or the tokenizer.json's sha256
    tokenizer_identity: dict[str, Any] | None = None
    tokens_exact: bool = False
    token_limit_enforced: bool = False
    token_distribution: dict[str, int] | None = None
    dropped_tokens: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    features: list[dict[str, Any]] | None = None  # for the dataset card, not the manifest

    def as_dict(self) -> dict[str, Any]:
        counted = self.tokenizer != "none"
        packing = packing_summary(self.files)
        return {
            "documents": self.documents,
            "records": self.records,
            "bytes": self.bytes,
            "dropped": dict(sorted(self.dropped.items())),
            "warnings": dict(sorted(self.warnings.items())),
            "tokens": self.tokens if counted else None,
            "tokenizer": self.tokenizer,
            **(
                {}
                if self.tokenizer_identity is None
                else {"tokenizer_identity": self.tokenizer_identity}
            ),
            "tokens_exact": self.tokens_exact,
            "token_limit_enforced": self.token_limit_enforced,
            "token_distribution": self.token_distribution,
            "dropped_tokens": dict(sorted(self.dropped_tokens.items())),
            "sources": dict(sorted(self.sources.items())),
            "events": dict(sorted(self.events.items())),
            "files": [f.as_dict(with_tokens=counted) for f in self.files],
            **({} if packing is None else {"packing": packing}),
        }


@dataclass(slots=True)
class RunReport:
    """The account of one ``pack`` run; :meth:`as_manifest` is ``manifest.json``."""

    qudata_version: str
    config: dict[str, Any]
    read: int = 0
    accepted: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    dropped_tokens: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    #: drops per benchmark file, when ``quality.decontamination`` is configured
    contaminated: dict[str, int] | None = None
    #: per benchmark file: documents dropped, items matched, the most matched items
    decontamination: dict[str, Any] | None = None
    mix: dict[str, Any] | None = None  # the mix's plan and its realised shares
    #: the dedup step's parameters and clusters (``DedupSummary.as_manifest``)
    dedup: dict[str, Any] | None = None
    formats: dict[str, FormatStats] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    output_dir: str | None = None
    notes: list[str] = field(default_factory=list)  # summary lines, not in the manifest
    #: things the user should know about the run (printed by the CLI; not in the manifest)
    cautions: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # entries of input folders not read
    #: the field-level account: ``mapped``/``carried``/``dropped`` -> input key -> records
    input_keys: dict[str, Counter[str]] = field(default_factory=dict)
    #: ``--resume``: ``partitions``, and how many of them had their ``scan`` and ``write``
    #: taken from the killed run (``taken``: whether there was one to take up); not in
    #: the manifest
    resumed: dict[str, int] | None = None

    def balanced(self) -> bool:
        """Both account identities hold."""
        if self.read != self.accepted + sum(self.dropped.values()):
            return False
        return all(
            self.accepted == f.documents + sum(f.dropped.values()) for f in self.formats.values()
        )

    def as_manifest(self) -> dict[str, Any]:
        config_json = orjson.dumps(self.config, option=orjson.OPT_SORT_KEYS)
        return {
            "qudata_version": self.qudata_version,
            "config": self.config,
            "config_sha256": hashlib.sha256(config_json).hexdigest(),
            "inputs": self.inputs,
            "counts": {
                "read": self.read,
                "accepted": self.accepted,
                "dropped": dict(sorted(self.dropped.items())),
                "dropped_tokens": dict(sorted(self.dropped_tokens.items())),
                "warnings": dict(sorted(self.warnings.items())),
                **({} if self.contaminated is None else {"contaminated": self.contaminated}),
                "skipped": dict(sorted(self.skipped.items())),
                "input_keys": {
                    name: dict(sorted(self.input_keys.get(name, Counter()).items()))
                    for name in ("mapped", "carried", "dropped")
                },
            },
            "formats": {name: stats.as_dict() for name, stats in self.formats.items()},
            **({} if self.mix is None else {"mix": self.mix}),
            **({} if self.dedup is None else {"dedup": self.dedup}),
            **({} if self.decontamination is None else {"decontamination": self.decontamination}),
        }


#: The most distinct licence values counted (see :attr:`Observations.licenses`).
MAX_LICENSES = 100


def add_bounded(counter: Counter[str], name: str, count: int, most: int) -> None:
    """Count ``name`` in ``counter`` if it is there or there is room, else as ``other``."""
    if name in counter or len(counter) < most:
        counter[name] += count
    else:
        counter["other"] += count


@dataclass(slots=True)
class Observations:
    """What the report charts need beyond the manifest, in constant memory.

    Quality scores of every readable document go to 20 fixed bins over [0, 1];
    documents written are counted per source, keeping at most ``max_sources``
    distinct names (the rest count as ``other``).
    """

    quality_bins: list[int] = field(default_factory=lambda: [0] * 20)
    unscored: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    max_sources: int = 10_000
    #: documents written per value of a ``license`` (or ``licence``) metadata field
    #: (at most ``MAX_LICENSES`` values; the rest count as ``other``)
    licenses: Counter[str] = field(default_factory=Counter)

    def add_license(self, metadata: dict[str, Any]) -> None:
        value = metadata.get("license", metadata.get("licence"))
        if isinstance(value, str) and value.strip():
            add_bounded(self.licenses, value.strip()[:200], 1, MAX_LICENSES)

    def add_score(self, score: float | None) -> None:
        if score is None:
            self.unscored += 1
        else:
            self.quality_bins[min(19, max(0, int(score * 20)))] += 1

    def add_source(self, source: str | None) -> None:
        name = source or "(no source)"
        if name in self.sources or len(self.sources) < self.max_sources:
            self.sources[name] += 1
        else:
            self.sources["other"] += 1
