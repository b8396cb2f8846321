"""Packaging of documents into training formats: ChatML, JSONL, plain text, preference pairs.

>>> from qudata.pack import ChatMLFormatter, JSONLFormatter, PlainTextFormatter
"""

from qudata.pack.base import Formatter
from qudata.pack.chatml import ChatMLFormatter
from qudata.pack.jsonl import JSONLFormatter
from qudata.pack.plain import PlainTextFormatter
from qudata.pack.preference import PreferenceFormatter
from qudata.pack.registry import FORMATTERS, get_formatter

__all__ = [
    "FORMATTERS",
    "ChatMLFormatter",
    "Formatter",
    "JSONLFormatter",
    "PlainTextFormatter",
    "PreferenceFormatter",
    "get_formatter",
]
