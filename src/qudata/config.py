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
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from qudata.errors import ConfigError

__all__ = [
    "ChatMLOptions",
    "Config",
    "DecontaminationConfig",
    "DedupConfig",
    "EngineConfig",
    "InputConfig",
    "JSONLOptions",
    "LLMBuilderOptions",
    "MegatronOptions",
    "MixConfig",
    "MixSource",
    "OutputConfig",
    "PackConfig",
    "PackedOptions",
    "ParquetOptions",
    "PlainOptions",
    "PreferenceOptions",
    "QualityConfig",
    "StorageConfig",
    "load_config",
    "merge_options",
    "parse_count",
    "parse_size",
]

FORMAT_NAMES = ("chatml", "jsonl", "plain")
FormatName = str  # a name of the format registry (qudata.pack.registry.FORMATTERS)
Role = Literal["system", "user", "assistant", "tool"]


def _default_formats() -> list[FormatName]:
    return ["chatml", "jsonl", "plain"]


def _default_roles() -> list[Role]:
    return ["user", "assistant"]


#: The user turn made from a plain document (variables: title, text, source, topics,
#: language, id, metadata, part, parts).
DEFAULT_USER_TEMPLATE = (
    '{% if title %}Write a document titled "{{ title }}"'
    "{% if parts > 1 %} (part {{ part }} of {{ parts }}){% endif %}."
    "{% else %}Write a document{% if parts > 1 %} (part {{ part }} of {{ parts }}){% endif %}."
    "{% endif %}"
)
#: The assistant turn made from a plain document (or from one part of it).
DEFAULT_ASSISTANT_TEMPLATE = "{{ text }}"


#: The arguments qudata passes to a chat template (``template_vars`` cannot set them).
CHAT_TEMPLATE_ARGUMENTS = ("messages", "tools", "documents", "add_generation_prompt")


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, defer_build=True)


class ChatMLOptions(Section):
    """``pack.chatml``: conversations in the OpenAI ``messages`` shape."""

    system_message: str | None = None
    system_policy: Literal["keep", "replace", "drop"] = "keep"
    include_metadata: bool = False
    max_tokens_per_message: int | None = Field(default=4096, gt=0)
    on_overflow: Literal["split", "truncate", "drop", "error"] = "split"
    user_template: str = DEFAULT_USER_TEMPLATE
    assistant_template: str = DEFAULT_ASSISTANT_TEMPLATE
    markup: Literal["escape", "strip", "drop"] = "escape"
    render: Literal["none", "chatml"] = "none"
    chat_template: str | None = None
    template_vars: dict[str, str] = Field(default_factory=dict)
    template_timeout: float = Field(default=5.0, gt=0)
    template_max_chars: int = Field(default=1_000_000, gt=0)

    @field_validator("template_vars")
    @classmethod
    def _no_reserved_vars(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(set(value) & set(CHAT_TEMPLATE_ARGUMENTS))
        if taken:
            raise ValueError(
                f"template_vars: {', '.join(taken)} is set by qudata when it renders "
                "(reserved: " + ", ".join(CHAT_TEMPLATE_ARGUMENTS) + ")"
            )
        return value


class JSONLOptions(Section):
    """``pack.jsonl``: one JSON object per line with exactly ``fields``."""

    fields: list[str] = Field(default_factory=lambda: ["text", "labels", "metadata"], min_length=1)
    field_mapping: dict[str, str] = Field(default_factory=dict)
    filter_low_quality: bool = False
    min_quality_score: float = Field(default=0.7, ge=0.0, le=1.0)

    @field_validator("fields")
    @classmethod
    def _unique_fields(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("fields must not repeat a name")
        return value


class PlainOptions(Section):
    """``pack.plain``: human-readable blocks for inspection."""

    separator: str = "\n---\n"
    include_headers: bool = True
    max_line_length: int | None = Field(default=None, gt=0)


class MegatronOptions(Section):
    """``pack.megatron``: a Megatron-LM indexed dataset (token ids, one sequence a document)."""

    #: what a conversation becomes: its ``text``, or ``render`` (ChatML markup)
    text: Literal["text", "render"] = "text"
    #: the end-of-document token; none: the tokenizer's (``<|endoftext|>``, ``</s>``, ...)
    eod_token: str | None = None


class PackedOptions(Section):
    """``pack.packed``: packed training sequences (token ids, positions, assistant masks)."""

    #: the most tokens of one row
    seq_len: int = Field(default=4096, gt=1)
    #: ``chatml`` (qudata's ChatML rendering) or a chat template (a path or inline)
    template: str = "chatml"
    #: variables for the chat template (``bos_token``, ...)
    template_vars: dict[str, str] = Field(default_factory=dict)
    #: the tokens in the loss: the assistant spans, or every token
    mask: Literal["assistant", "all"] = "assistant"
    #: best-fit decreasing over the whole split, or in input order
    strategy: Literal["bfd", "sequential"] = "bfd"
    #: a conversation longer than ``seq_len``: dropped (``too_long``), or cut between turns
    on_overflow: Literal["drop", "split_turns"] = "drop"
    #: a template that renders earlier assistant turns differently from the last one
    reasoning: Literal["last_turn", "per_turn", "keep"] = "last_turn"
    #: the end-of-document token of plain documents; none: the tokenizer's
    eod_token: str | None = None


class PreferenceOptions(Section):
    """``pack.preference``: TRL conversational preference records (prompt, chosen, rejected)."""

    include_metadata: bool = False
    markup: Literal["escape", "strip", "drop"] = "escape"


class ParquetOptions(Section):
    """``pack.parquet``: typed columns; no options yet."""


class LLMBuilderOptions(Section):
    """``pack.llmbuilder``: one file per split for LLMBuilder, token ids or text.

    With ``tokenizer`` (a SentencePiece ``.model``), ``<split>.npy``: int32 ids, each
    document's ``encode(text)`` then the model's EOS id. Without, ``<split>.txt``: each
    document, then a line holding ``separator``; ``paragraphs: keep`` keeps a blank line
    between paragraphs, ``newline`` makes it one newline (LLMBuilder's default cleaning
    deletes blank lines and glues the lines around them together).
    """

    tokenizer: str | None = None
    separator: str = "<|endoftext|>"
    paragraphs: Literal["keep", "newline"] = "keep"

    @field_validator("separator")
    @classmethod
    def _one_visible_line(cls, value: str) -> str:
        if not value or value != value.strip() or not value.isprintable():
            raise ValueError(
                "separator: one line of visible text, no surrounding spaces (LLMBuilder's "
                "cleaner strips spaces and deletes control characters): e.g. <|endoftext|>"
            )
        return value


class PackConfig(Section):
    """``pack``: which formats to write and the options of each."""

    formats: list[FormatName] = Field(default_factory=_default_formats, min_length=1)
    chatml: ChatMLOptions = Field(default_factory=ChatMLOptions)
    jsonl: JSONLOptions = Field(default_factory=JSONLOptions)
    plain: PlainOptions = Field(default_factory=PlainOptions)
    parquet: ParquetOptions = Field(default_factory=ParquetOptions)
    llmbuilder: LLMBuilderOptions = Field(default_factory=LLMBuilderOptions)
    megatron: MegatronOptions = Field(default_factory=MegatronOptions)
    packed: PackedOptions = Field(default_factory=PackedOptions)
    preference: PreferenceOptions = Field(default_factory=PreferenceOptions)

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, value: list[str]) -> list[str]:
        from qudata.pack.registry import FORMATTERS  # the names come from the registry only

        unknown = [name for name in value if name not in FORMATTERS]
        if unknown:
            choices = ", ".join(f"'{name}'" for name in FORMATTERS)
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
        from qudata.normalize.columns import COLUMN_NAMES

        unknown = sorted(set(value) - set(COLUMN_NAMES))
        if unknown:
            raise ValueError(f"unknown column {unknown[0]!r} (allowed: {', '.join(COLUMN_NAMES)})")
        return value

    @field_validator("tags")
    @classmethod
    def _known_tags(cls, value: dict[str, str]) -> dict[str, str]:
        from qudata.normalize.columns import TAG_NAMES

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


_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
}


def parse_size(value: int | str) -> int:
    """``"256MB"`` -> 256000000; ``"1GiB"`` -> 1073741824; an int is bytes."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Z]*)", value.strip().upper().replace(" ", ""))
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"size {value!r}: expected a number with B, KB, MB, GB, KiB, MiB or GiB")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


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


_COUNT_UNITS = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def parse_count(value: str) -> int:
    """``"1B"`` -> 1000000000; ``"250M"``, ``"1_000_000"`` and ``"1.5K"`` too."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMBGT]?)", value.strip().upper().replace("_", ""))
    if match is None:
        raise ValueError(f"count {value!r}: expected a number with K, M, B or T")
    return int(float(match.group(1)) * _COUNT_UNITS[match.group(2)])


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


class StorageConfig(Section):
    """``storage``: how inputs named by URI are reached. ``options``: per fsspec
    protocol, the options of its filesystem (``{"s3": {"endpoint_url": "http://...",
    "key": ..., "secret": ...}}``), set on the driver and on every Ray worker. Never
    written into the manifest or the card."""

    options: dict[str, dict[str, Any]] = Field(default_factory=dict)


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
        chatml = self.pack.chatml
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


M = TypeVar("M", bound=BaseModel)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a model accepts at ``loc`` (the parent of an unknown key)."""
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
    return sorted(getattr(current, "model_fields", {}))


def _describe(exc: ValidationError, model: type[BaseModel], prefix: str) -> str:
    """One line per problem: the dotted path, what is wrong, what is allowed."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in (*([prefix] if prefix else []), *loc)) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(model, loc[:-1]))
            lines.append(f"unknown key '{path}' (allowed keys: {allowed})")
        elif err["type"] == "value_error":
            message = err["msg"].removeprefix("Value error, ")
            lines.append(message if not loc else f"'{path}': {message}")
        else:
            got = err.get("input")
            shown = f"; got {got!r}" if not isinstance(got, Mapping | list) else ""
            lines.append(f"'{path}': {err['msg']}{shown}")
    return "; ".join(lines)


def validate_section(model: type[M], data: Mapping[str, Any], *, prefix: str = "") -> M:
    """Build ``model`` from ``data`` or raise :class:`ConfigError` naming the path."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, model, prefix)) from None


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


def merge_options(
    model: type[M],
    base: M,
    config: Mapping[str, Any] | None,
    options: Mapping[str, Any],
    *,
    prefix: str,
) -> M:
    """Options for one call: keyword arguments override ``config``, which overrides ``base``."""
    if not config and not options:
        return base
    data = base.model_dump()
    data.update(config or {})
    data.update(options)
    return validate_section(model, data, prefix=prefix)
