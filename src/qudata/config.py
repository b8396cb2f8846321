"""Typed configuration: one model per YAML section, defaults written once, on the fields.

The run's sections are declared in ``config_input.py`` (``input``),
``config_quality.py`` (``quality``, ``dedup``) and ``config_output.py`` (``output``,
``mix``, ``engine``); each format's ``pack.<format>`` options beside the format
(``pack/<format>.py``). This module puts them together.

A configuration comes from a YAML file, a mapping, or keyword arguments; all of
them go through :func:`load_config`, so an unknown key or a wrong type gives the
same clear error wherever it comes from::

    >>> cfg = load_config({"pack": {"jsonl": {"min_quality_score": 0.8}}})
    >>> cfg.pack.jsonl.min_quality_score
    0.8
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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

from qudata.config_input import InputConfig
from qudata.config_output import (
    EngineConfig,
    MixConfig,
    MixSource,
    OutputConfig,
    StorageConfig,
)
from qudata.config_quality import DecontaminationConfig, DedupConfig, QualityConfig
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
    "StorageConfig",
    "load_config",
    "merge_options",
    "parse_count",
    "parse_size",
    "read_yaml",
    "validate_section",
]

#: The options model of each output format, by name, in the registry's order. The
#: registry fills it (:mod:`qudata.pack.registry`, which ``import qudata`` loads), so
#: that this module imports nothing from :mod:`qudata.pack`.
FORMAT_OPTIONS: dict[str, type[Section]] = {}


def _default_formats() -> list[str]:
    return ["chatml", "jsonl", "plain"]


class PackConfig(Section):
    """``pack``: which formats to write, and one section of options per format.

    Each format declares its options model beside its class (``pack/<format>.py``);
    the registry (:mod:`qudata.pack.registry`) lists them in :data:`FORMAT_OPTIONS`,
    and this section hands each ``pack.<format>`` mapping to its model. So
    ``cfg.pack.chatml`` is a ``ChatMLOptions`` (every registered format has its
    section, with its defaults when the configuration has none).
    """

    model_config = ConfigDict(extra="allow", frozen=True, validate_default=True, defer_build=True)

    formats: list[str] = Field(
        default_factory=_default_formats,
        min_length=1,
        description="formats written by `qudata pack` (the names of the format registry)",
    )

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
    storage: StorageConfig = Field(default_factory=StorageConfig)
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


def read_yaml(path: Path) -> dict[str, Any]:
    """A configuration file's sections as written (loaded safely, not validated)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}); save the file as UTF-8") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a configuration") from None
    except ValueError as exc:  # a scalar its tag cannot build (a date 2020-13-45, !!int x)
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
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
        data = read_yaml(Path(source))
    if overrides:
        data = _deep_merge(data, overrides)
    return validate_section(Config, data)
