"""Packaging of documents into training formats: every formatter of the registry.

ChatML, JSONL, plain text, Parquet, LLMBuilder, preference pairs, Megatron indexed
datasets and packed sequences; :func:`get_formatter` finds one by name.

>>> from qudata.pack import ChatMLFormatter, JSONLFormatter, PlainTextFormatter
"""

from qudata.pack.base import Formatter
from qudata.pack.chatml import ChatMLFormatter
from qudata.pack.jsonl import JSONLFormatter
from qudata.pack.llmbuilder import LLMBuilderFormatter
from qudata.pack.megatron import MegatronFormatter
from qudata.pack.packed import PackedFormatter
from qudata.pack.parquet import ParquetFormatter
from qudata.pack.plain import PlainTextFormatter
from qudata.pack.preference import PreferenceFormatter
from qudata.pack.registry import FORMATTERS, get_formatter

__all__ = [
    "FORMATTERS",
    "ChatMLFormatter",
    "Formatter",
    "JSONLFormatter",
    "LLMBuilderFormatter",
    "MegatronFormatter",
    "PackedFormatter",
    "ParquetFormatter",
    "PlainTextFormatter",
    "PreferenceFormatter",
    "get_formatter",
]
