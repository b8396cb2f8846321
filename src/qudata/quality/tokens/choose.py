"""The counter for a ``--tokenizer`` value."""

from __future__ import annotations

import os
from functools import lru_cache

from qudata.errors import ConfigError
from qudata.quality.tokens.base import TokenCounter
from qudata.quality.tokens.encodings import CHOICES, ENCODINGS, load_encoding
from qudata.quality.tokens.estimate import EstimateCounter
from qudata.quality.tokens.hf import HFTokenizerCounter
from qudata.quality.tokens.tiktoken_counter import TiktokenCounter

__all__ = ["DEFAULT_SPEC", "get_token_counter"]

DEFAULT_SPEC = "cl100k_base"


@lru_cache(maxsize=16)
def get_token_counter(spec: str = DEFAULT_SPEC, threads: int | None = None) -> TokenCounter | None:
    """The counter for ``spec``: cl100k_base, o200k_base, a tokenizer.json path, estimate; or
    None for ``none``. ``threads``: of a tiktoken batch (None: chosen per batch).

    >>> get_token_counter("none") is None
    True
    """
    key = spec.strip().lower()
    if key == "none":
        return None
    if key == "estimate":
        return EstimateCounter()
    if key in ENCODINGS:
        return TiktokenCounter(load_encoding(key), num_threads=threads)
    if key.endswith(".json") or os.path.isfile(spec):
        return HFTokenizerCounter(spec.strip())
    raise ConfigError(f"unknown tokenizer {spec!r}: choose one of {CHOICES}")
