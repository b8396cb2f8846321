"""The ``output``, ``mix`` and ``engine`` sections: what is written, from which mix, where."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from qudata.sections import Section, parse_count, parse_size

__all__ = ["CardConfig", "EngineConfig", "MixConfig", "MixSource", "OutputConfig", "StorageConfig"]


class CardConfig(Section):
    """``output.card``: the user's own statement in the dataset card (``README.md``):
    ``license`` (an SPDX id or ``other``, the Hub's ``license:``), ``pretty_name``, and a
    ``description`` paragraph. Left out of the manifest while empty."""

    license: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="the dataset's licence in the card (an SPDX id or `other`)",
    )
    pretty_name: str | None = Field(
        default=None, min_length=1, max_length=200, description="the card's `pretty_name`"
    )
    description: str | None = Field(
        default=None,
        min_length=1,
        max_length=20_000,
        description="a paragraph under the card's title",
    )


class OutputConfig(Section):
    """``output``: splits, order, shards and compression of the dataset folder."""

    overwrite: bool = Field(
        default=False,
        description="replace the output folder when it is a qudata dataset (never any other "
        "non-empty folder)",
    )
    split: dict[str, float] = Field(
        default_factory=lambda: {"train": 1.0}, description="split fractions (add up to 1)"
    )
    seed: int = Field(  # xxhash takes a 64-bit seed
        default=0, ge=0, lt=2**64, description="seed of splits and shuffling (0 to 2^64-1)"
    )
    shuffle: bool = Field(default=False, description="shuffle within each split (bounded memory)")
    shard_size: int | str | None = Field(
        default=None, description="start a new shard after this many bytes (`256MB`)"
    )
    shard_records: int | None = Field(
        default=None, gt=0, description="start a new shard after this many records"
    )
    compression: Literal["none", "gzip", "zstd"] = Field(
        default="none", description="`none`, `gzip`, `zstd`"
    )
    add_metadata: list[Literal["chars", "words", "tokens", "language"]] = Field(
        default_factory=list,
        description="computed metadata to add: `chars`, `words`, `tokens`, `language`",
    )
    card: CardConfig = Field(
        default_factory=CardConfig, description="the user's statement in the dataset card"
    )

    @field_validator("split")
    @classmethod
    def _valid_split(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("at least one split is needed")
        for name, fraction in value.items():
            # datasets accepts split names of word characters only, and reserves "all"
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_]{0,63}", name) or name == "all":
                raise ValueError(
                    f"split name {name!r}: use letters, digits and '_' (and not 'all')"
                )
            if not 0 < fraction <= 1:
                raise ValueError(f"split {name!r}: fraction must be in (0, 1], got {fraction}")
        if abs(sum(value.values()) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must add up to 1, got {sum(value.values()):g}")
        return value

    @field_validator("shard_size")
    @classmethod
    def _valid_size(cls, value: int | str | None) -> int | str | None:
        if value is not None and parse_size(value) <= 0:
            raise ValueError("shard_size must be positive")
        return value


class MixSource(Section):
    """One source of ``mix.sources``: files (a path, folder or glob) and a token share."""

    path: str = Field(description="files of the source: a path, folder or glob")
    weight: float = Field(
        gt=0.0, allow_inf_nan=False, description="the source's share of the mix's tokens"
    )


class MixConfig(Section):
    """``mix``: sources mixed by their share of output tokens."""

    sources: list[MixSource] = Field(
        min_length=1,
        description="`[{path, weight}]`: sources mixed by token share (replace the INPUT "
        "arguments)",
    )
    target_tokens: int | None = Field(
        default=None,
        gt=0,
        description="tokens of the mix (`1B`); none: every token of the scarcest source",
    )
    seed: int = Field(default=0, ge=0, lt=2**64, description="seed of the mix's samples")

    @field_validator("target_tokens", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        return parse_count(value) if isinstance(value, str) else value


class EngineConfig(Section):
    """``engine``: where the pipeline runs; the output is the same whatever runs it.

    ``local`` runs the stages in ``workers`` processes (default: the usable CPUs; 1: in
    this process; an input under 4 MB always runs in this process unless ``workers`` is
    set). ``ray`` (extra ``qudata[ray]``) joins the cluster at ``address`` (``auto``: the
    one started on this machine with ``ray start``), or starts a local Ray instance with
    ``num_cpus`` (default 2) and ``object_store_memory`` (default 200MB).
    ``partition_size`` (default: about 1/32 of the input, 1 MiB to 64 MiB) is the
    byte size at which large JSON Lines files are cut into partitions.
    """

    name: Literal["local", "ray"] = Field(
        default="local", description="`local` (a pool of worker processes) or `ray`"
    )
    workers: int | None = Field(
        default=None,
        gt=0,
        description="lanes of the local engine: this process and `workers - 1` worker "
        "processes (1: this process only; none: the usable CPUs)",
    )
    partition_size: int | str | None = Field(
        default=None,
        description="the size of a partition: a piece of a large JSON Lines or Parquet file, "
        "a slice of text files (none: 1/32 of the input, 1 MiB to 64 MiB)",
    )
    address: str | None = Field(
        default=None, description="Ray cluster to join (`auto`); none starts a local instance"
    )
    num_cpus: int | None = Field(
        default=None, gt=0, description="CPUs of the local Ray instance (none: 2)"
    )
    object_store_memory: int | str | None = Field(
        default=None, description="object store of the local Ray instance (none: 200MB)"
    )

    @field_validator("object_store_memory", "partition_size")
    @classmethod
    def _valid_memory(cls, value: int | str | None) -> int | str | None:
        if value is not None and parse_size(value) <= 0:
            raise ValueError("must be a positive size")
        return value


class StorageConfig(Section):
    """``storage``: how inputs and outputs named by URI are reached (see ``docs/scaling.md``)."""

    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per fsspec protocol, the options of its filesystem (`s3: {endpoint_url: "
        "..., key: ..., secret: ...}`), set on the driver and every worker; never written "
        "into the manifest or the card",
    )
    staging: str | None = Field(
        default=None,
        min_length=1,
        description="the local folder where a run whose `-o` is a URI stages the dataset "
        "before the upload (default: the system's temporary folder), or an fsspec URI "
        "(`s3://bucket/tmp`) under which Ray tasks keep the staging when the nodes share "
        "no folder (see `docs/scaling.md`)",
    )
