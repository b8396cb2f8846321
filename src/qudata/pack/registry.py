"""The registry of output formats: adding a format is one module and one line here."""

from __future__ import annotations

from typing import Any

from qudata.errors import ConfigError
from qudata.pack.base import Formatter
from qudata.pack.chatml import ChatMLFormatter
from qudata.pack.jsonl import JSONLFormatter
from qudata.pack.kto import KTOFormatter
from qudata.pack.llmbuilder import LLMBuilderFormatter
from qudata.pack.megatron import MegatronFormatter
from qudata.pack.packed import PackedFormatter
from qudata.pack.parquet import ParquetFormatter
from qudata.pack.plain import PlainTextFormatter
from qudata.pack.preference import PreferenceFormatter

__all__ = ["FORMATTERS", "get_formatter"]

FORMATTERS: dict[str, type[Formatter[Any]]] = {
    ChatMLFormatter.name: ChatMLFormatter,
    JSONLFormatter.name: JSONLFormatter,
    PlainTextFormatter.name: PlainTextFormatter,
    ParquetFormatter.name: ParquetFormatter,
    LLMBuilderFormatter.name: LLMBuilderFormatter,
    PreferenceFormatter.name: PreferenceFormatter,
    MegatronFormatter.name: MegatronFormatter,
    PackedFormatter.name: PackedFormatter,
    KTOFormatter.name: KTOFormatter,
}


def get_formatter(name: str, config: Any = None, **options: Any) -> Formatter[Any]:
    """A formatter by name: ``get_formatter("chatml")``."""
    try:
        cls = FORMATTERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown format {name!r} (choose from: {', '.join(sorted(FORMATTERS))})"
        ) from None
    return cls(config, **options)
