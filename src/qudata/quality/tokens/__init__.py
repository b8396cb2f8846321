"""Token counting: one interface for exact (tiktoken, Hugging Face) and estimated counts.

Counts are like ``encode_ordinary``: ``<|endoftext|>`` inside a text is ordinary text.

    >>> counter = get_token_counter("cl100k_base")
    >>> counter.count("hello world"), counter.exact
    (2, True)
"""

from __future__ import annotations

from qudata.quality.tokens.base import TokenCounter, proportional_ends
from qudata.quality.tokens.cache import CountCache
from qudata.quality.tokens.choose import DEFAULT_SPEC, get_token_counter
from qudata.quality.tokens.encodings import load_tiktoken_encoding
from qudata.quality.tokens.estimate import EstimateCounter, estimate_tokens
from qudata.quality.tokens.hf import HFTokenizerCounter
from qudata.quality.tokens.histogram import TokenHistogram
from qudata.quality.tokens.threads import (
    CHARS_PER_THREAD,
    DEFAULT_THREADS,
    batch_threads,
    free_cpus,
)
from qudata.quality.tokens.tiktoken_counter import TiktokenCounter

__all__ = [
    "CHARS_PER_THREAD",
    "DEFAULT_SPEC",
    "DEFAULT_THREADS",
    "CountCache",
    "EstimateCounter",
    "HFTokenizerCounter",
    "TiktokenCounter",
    "TokenCounter",
    "TokenHistogram",
    "batch_threads",
    "estimate_tokens",
    "free_cpus",
    "get_token_counter",
    "load_tiktoken_encoding",
    "proportional_ends",
]
