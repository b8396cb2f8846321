"""Typed configuration: one model per YAML section, defaults written once here.

A configuration comes from a YAML file, a mapping, or keyword arguments; all of
them go through :func:`load_config`, so an unknown key or a wrong type gives the
same clear error wherever it comes from::

    >>> cfg = load_config({"pack": {"jsonl": {"min_quality_score": 0.8}}})
    >>> cfg.pack.jsonl.min_quality_score
    0.8
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from qudata.errors import ConfigError
from qudata.sections import (
    SECTION_ERROR,
    Section,
    describe_errors,
    merge_options,
    parse_count,
    parse_size,
    validate_section,
)

__all__ = [
    "FORMAT_OPTIONS",
    "Config",
    "DecontaminationConfig",
    "DedupConfig",
    "EngineConfig",
    "InputConfig",
    "MixConfig",
    "MixSource",
    "OutputConfig",
    "PackConfig",
    "QualityConfig",
    "Section",
    "load_config",
    "merge_options",
    "parse_count",
    "parse_size",
    "validate_section",
]

#: The options model of each output format, by name, in the registry's order. The
#: registry fills it (:mod:`qudata.pack.registry`, which ``import qudata`` loads), so
#: that this module imports nothing from :mod:`qudata.pack`.
FORMAT_OPTIONS: dict[str, type[Section]] = {}
Role = Literal["system", "user", "assistant", "tool"]


def _default_formats() -> list[str]:
    return ["chatml", "jsonl", "plain"]


def _default_roles() -> list[Role]:
    return ["user", "assistant"]


class PackConfig(Section):
    """``pack``: which formats to write, and one section of options per format.

    Each format declares its options model beside its class (``pack/<format>.py``);
    the registry (:mod:`qudata.pack.registry`) lists them in :data:`FORMAT_OPTIONS`,
    and this section hands each ``pack.<format>`` mapping to its model. So
    ``cfg.pack.chatml`` is a ``ChatMLOptions`` (every registered format has its
    section, with its defaults when the configuration has none).
    """

    model_config = ConfigDict(extra="allow", frozen=True, validate_default=True, defer_build=True)

    formats: list[str] = Field(default_factory=_default_formats, min_length=1)

    def options(self, name: str) -> Section:
        """The options of the format called ``name``."""
        return getattr(self, name)  # type: ignore[no-any-return]

    @model_validator(mode="wrap")
    @classmethod
    def _format_sections(cls, data: Any, handler: ModelWrapValidatorHandler[PackConfig]) -> Any:
        if not isinstance(data, Mapping):
            return handler(data)  # pydantic says what is wrong
        sections, problems = {}, []
        for name, model in FORMAT_OPTIONS.items():
            try:
                sections[name] = validate_section(model, data.get(name, {}), prefix=f"pack.{name}")
            except ConfigError as exc:
                problems.append(str(exc))
        allowed = ", ".join(sorted(["formats", *FORMAT_OPTIONS]))
        problems.extend(
            f"unknown key 'pack.{key}' (allowed keys: {allowed})"
            for key in data
            if key != "formats" and key not in FORMAT_OPTIONS
        )
        given = {key: value for key, value in data.items() if key == "formats"}
        try:
            pack = handler({**given, **sections})
        except ValidationError as exc:  # the formats: their problems come first
            problems.insert(0, describe_errors(exc, cls, "pack"))
        if problems:
            raise PydanticCustomError(
                SECTION_ERROR, "{problems}", {"problems": "; ".join(problems)}
            )
        return pack

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in FORMAT_OPTIONS]
        if unknown:
            choices = ", ".join(f"'{name}'" for name in FORMAT_OPTIONS)
            raise ValueError(f"unknown format {unknown[0]!r} (choose from: {choices})")
        return list(dict.fromkeys(value))


class InputConfig(Section):
    """``input``: where the text and id of each record are, and what a bad record does.

    ``columns`` maps qudata's names (prompt, query, response, history, system, messages,
    tools, chosen, rejected, text, id) to the file's keys, ``tags`` the keys and role
    values of conversation turns (role_tag, content_tag, user_tag, assistant_tag,
    system_tag, function_tag, observation_tag), as LLaMA-Factory's ``dataset_info.json``;
    ``role_map`` adds role names (``{bing: assistant}``).
    ``max_line_bytes`` bounds a JSONL line (``64MB``; a longer one is rejected as
    ``line_too_long`` while it is read) and ``max_document_chars`` a document's text
    (none by default; a longer one is rejected as ``document_too_long``).
    """

    text_key: str = "text"
    id_key: str = "id"
    on_error: Literal["skip", "fail"] = "skip"
    columns: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    role_map: dict[str, Role] = Field(default_factory=dict)
    max_line_bytes: int | str = "64MB"
    max_document_chars: int | None = Field(default=None, gt=0)

    @property
    def text_field(self) -> str:
        """The key of the text (``columns.text`` wins over ``text_key``)."""
        return self.columns.get("text", self.text_key)

    @property
    def id_field(self) -> str:
        """The key of the id (``columns.id`` wins over ``id_key``)."""
        return self.columns.get("id", self.id_key)

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        from qudata.columns import COLUMN_NAMES

        unknown = sorted(set(value) - set(COLUMN_NAMES))
        if unknown:
            raise ValueError(f"unknown column {unknown[0]!r} (allowed: {', '.join(COLUMN_NAMES)})")
        return value

    @field_validator("tags")
    @classmethod
    def _known_tags(cls, value: dict[str, str]) -> dict[str, str]:
        from qudata.columns import TAG_NAMES

        unknown = sorted(set(value) - set(TAG_NAMES))
        if unknown:
            raise ValueError(f"unknown tag {unknown[0]!r} (allowed: {', '.join(TAG_NAMES)})")
        return value

    @field_validator("max_line_bytes")
    @classmethod
    def _valid_line_bytes(cls, value: int | str) -> int | str:
        if parse_size(value) <= 0:
            raise ValueError("max_line_bytes must be positive")
        return value


class DecontaminationConfig(Section):
    """``quality.decontamination``: drop documents sharing an n-gram with a benchmark."""

    files: list[str] = Field(min_length=1)
    ngram: int = Field(default=13, ge=8, le=64)
    fields: list[str] | None = Field(default=None, min_length=1)


class QualityConfig(Section):
    """``quality``: token counting and quality-score filtering before formatting."""

    tokenizer: str = "cl100k_base"
    #: threads of a batch token count; None: chosen per batch from its size and free CPUs
    token_threads: int | None = Field(default=None, ge=1, le=64)
    min_quality_score: float | None = Field(default=None, ge=0.0, le=1.0)
    missing_score: Literal["keep", "drop", "score"] = "keep"
    score_components: bool = False
    decontamination: DecontaminationConfig | None = None
    #: keep only these languages (ISO 639-1); others are dropped as ``wrong_language``
    languages: list[str] | None = Field(default=None, min_length=1)
    min_language_confidence: float = Field(default=0.5, ge=0.0, le=1.0)

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


class DedupConfig(Section):
    """``dedup``: exact or near-duplicate removal; the first copy seen is kept."""

    method: Literal["none", "exact", "near"] = "exact"
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    num_perm: int = Field(default=128, ge=16, le=1024)
    ngram: int = Field(default=5, ge=1, le=32)
    roles: list[Role] = Field(default_factory=_default_roles, min_length=1)
    # the global dedup step's budget: its sort runs, key ranges and signature reads
    memory: int | str = "1GB"

    @field_validator("memory")
    @classmethod
    def _valid_memory(cls, value: int | str) -> int | str:
        if parse_size(value) < 2**20:
            raise ValueError("memory must be at least 1MiB")
        return value


class OutputConfig(Section):
    """``output``: splits, order, shards and compression of the dataset folder."""

    overwrite: bool = False
    split: dict[str, float] = Field(default_factory=lambda: {"train": 1.0})
    seed: int = Field(default=0, ge=0, lt=2**64)  # xxhash takes a 64-bit seed
    shuffle: bool = False
    shard_size: int | str | None = None
    shard_records: int | None = Field(default=None, gt=0)
    compression: Literal["none", "gzip", "zstd"] = "none"
    add_metadata: list[Literal["chars", "words", "tokens", "language"]] = Field(
        default_factory=list
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

    path: str
    weight: float = Field(gt=0.0)


class MixConfig(Section):
    """``mix``: sources mixed by their share of output tokens."""

    sources: list[MixSource] = Field(min_length=1)
    target_tokens: int | None = Field(default=None, gt=0)
    seed: int = Field(default=0, ge=0, lt=2**64)

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

    name: Literal["local", "ray"] = "local"
    workers: int | None = Field(default=None, gt=0)
    partition_size: int | str | None = None
    address: str | None = None
    num_cpus: int | None = Field(default=None, gt=0)
    object_store_memory: int | str | None = None

    @field_validator("object_store_memory", "partition_size")
    @classmethod
    def _valid_memory(cls, value: int | str | None) -> int | str | None:
        if value is not None and parse_size(value) <= 0:
            raise ValueError("must be a positive size")
        return value


class Config(Section):
    """The whole configuration; every section has defaults.

    ``quality.tokenizer: none`` with an explicit ``pack.chatml.max_tokens_per_message``
    is refused: a limit that cannot be enforced must not look enforced.
    """

    input: InputConfig = Field(default_factory=InputConfig)
    pack: PackConfig = Field(default_factory=PackConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    mix: MixConfig | None = None

    @model_validator(mode="after")
    def _mix_needs_counter(self) -> Config:
        if self.mix is not None and self.quality.tokenizer == "none":
            raise ValueError(
                "mix weights are shares of tokens: choose a tokenizer (quality.tokenizer)"
            )
        return self

    @model_validator(mode="after")
    def _limit_needs_counter(self) -> Config:
        chatml: Any = self.pack.options("chatml")
        if (
            self.quality.tokenizer == "none"
            and "max_tokens_per_message" in chatml.model_fields_set
            and chatml.max_tokens_per_message is not None
        ):
            raise ValueError(
                "pack.chatml.max_tokens_per_message cannot be enforced with "
                "quality.tokenizer: none (choose a tokenizer, or remove the limit)"
            )
        return self


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}); save the file as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a configuration") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_config(
    source: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load and validate a configuration.

    ``source`` is a :class:`Config`, a mapping of sections, or a YAML file path;
    ``overrides`` (same shape, e.g. from command-line options) win over it.
    """
    if isinstance(source, Config):
        if not overrides:
            return source
        data: dict[str, Any] = source.model_dump(exclude_unset=True)
    elif source is None:
        data = {}
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        data = _read_yaml(Path(source))
    if overrides:
        data = _deep_merge(data, overrides)
    return validate_section(Config, data)
