"""The ``quality`` and ``dedup`` sections: what is counted, scored and kept."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from qudata.config_input import Role
from qudata.sections import Section, parse_size

__all__ = ["DecontaminationConfig", "DedupConfig", "QualityConfig"]


class DecontaminationConfig(Section):
    """``quality.decontamination``: drop documents sharing an n-gram with a benchmark."""

    files: list[str] = Field(
        min_length=1,
        description="benchmark files: drop documents sharing an n-gram with them (`contaminated`)",
    )
    ngram: int = Field(
        default=13,
        ge=8,
        le=64,
        description="words per n-gram (at least 8); words are letters and digits, one per "
        "character in Chinese, Japanese, Thai",
    )
    fields: list[str] | None = Field(
        default=None,
        min_length=1,
        description="benchmark fields compared (none: every string field); a file with no "
        "such field of 8+ words is named in a warning",
    )


class QualityConfig(Section):
    """``quality``: token counting and quality-score filtering before formatting."""

    tokenizer: str = Field(
        default="cl100k_base",
        description="`cl100k_base`, `o200k_base`, `path/tokenizer.json`, `estimate`, `none`",
    )
    token_threads: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="threads of a batch token count; none: automatic, one per 256 KiB of text "
        "in the batch, at most the CPUs not busy (load average)",
    )
    min_quality_score: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="drop documents under this score before formatting (`low_quality`)",
    )
    missing_score: Literal["keep", "drop", "score"] = Field(
        default="keep",
        description="document without a score: `keep`, `drop`, or `score` it heuristically",
    )
    score_components: bool = Field(
        default=False,
        description="with `missing_score: score`, add the scorer's components to metadata",
    )
    decontamination: DecontaminationConfig | None = None
    languages: list[str] | None = Field(
        default=None,
        min_length=1,
        description="ISO 639-1 codes to keep (none: all kept; other codes are normalised: "
        "`cmn`, `wuu`, `yue` are `zh`, see quality.md); others are dropped (`wrong_language`)",
    )
    min_language_confidence: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="below it a detected language is `und` (kept, warned)",
    )

    @field_validator("languages")
    @classmethod
    def _iso_codes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        codes = [code.strip().lower() for code in value]
        bad = [c for c in codes if not re.fullmatch(r"[a-z]{2,3}", c)]
        if bad:
            raise ValueError(f"not ISO 639-1 language codes: {', '.join(bad)} (e.g. en, de)")
        return codes


def _default_roles() -> list[Role]:
    return ["user", "assistant"]


class DedupConfig(Section):
    """``dedup``: exact or near-duplicate removal; the first copy seen is kept."""

    method: Literal["none", "exact", "near"] = Field(
        default="exact",
        description="`none`, `exact` (normalised text), `near` (MinHash LSH, implies exact)",
    )
    threshold: float = Field(
        default=0.8, gt=0.0, le=1.0, description="Jaccard similarity for near duplicates"
    )
    num_perm: int = Field(default=128, ge=16, le=1024, description="MinHash permutations")
    ngram: int = Field(
        default=5,
        ge=1,
        le=32,
        description="shingle size of MinHash: words, or characters for a text mostly in "
        "Chinese, Japanese, Thai (30% of its non-space characters)",
    )
    roles: list[Role] = Field(
        default_factory=_default_roles,
        min_length=1,
        description="roles whose content a conversation is compared on",
    )
    memory: int | str = Field(
        default="1GB",
        description="budget of the global dedup step (`--dedup-memory`): sort runs, key "
        "ranges, signature reads",
    )

    @field_validator("memory")
    @classmethod
    def _valid_memory(cls, value: int | str) -> int | str:
        if parse_size(value) < 2**20:
            raise ValueError("memory must be at least 1MiB")
        return value
