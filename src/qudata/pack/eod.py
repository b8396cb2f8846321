"""The end-of-document token of a tokenizer: its own EOS.

In order: ``eod_token`` when given (``pack.megatron.eod_token``, ``pack.packed.eod_token``);
else the tokenizer's own EOS: the ``eos_token`` of the ``tokenizer_config.json`` beside a
``tokenizer.json`` (or of the ``tokenizer_config.json`` given as the template), and
``<|endoftext|>`` for the tiktoken encodings; else, for a bare ``tokenizer.json``, the first
of :data:`EOD_CANDIDATES` it has.
"""

from __future__ import annotations

import json
import os
from typing import Any

from qudata.errors import ConfigError

__all__ = ["EOD_CANDIDATES", "end_of_document", "tokenizer_eos", "tokenizer_tokens"]

EOD_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|eot_id|>", "<|im_end|>")


def tokenizer_tokens(base: Any) -> dict[str, str]:
    """The special tokens (``bos_token``, ``eos_token``, ``unk_token``, ``pad_token``) of
    the ``tokenizer_config.json`` beside a counter's ``tokenizer.json``, as
    ``transformers`` gives them to a chat template; none for a tiktoken encoding."""
    path = getattr(base, "name", None)
    if not isinstance(path, str) or not os.path.isfile(path):
        return {}
    config = os.path.join(os.path.dirname(path), "tokenizer_config.json")
    try:
        with open(config, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    found = {}
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        value = data.get(key) if isinstance(data, dict) else None
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str):
            found[key] = value
    return found


def tokenizer_eos(base: Any) -> str | None:
    """The EOS text of a token counter's tokenizer, where it says so."""
    if getattr(base, "name", None) in ("cl100k_base", "o200k_base"):
        return "<|endoftext|>"
    return tokenizer_tokens(base).get("eos_token")


def end_of_document(
    base: Any, eod_token: str | None, template_eos: str | None = None, *, option: str
) -> int:
    """The id of the end-of-document token (see the module); ``option`` names the
    setting in the error when there is none."""
    base = getattr(base, "_base", base)
    if eod_token:
        found = base.token_id(eod_token)
        if found is None:
            raise ConfigError(f"{option}: the tokenizer has no token {eod_token!r}")
        return int(found)
    for name in (tokenizer_eos(base), template_eos, *EOD_CANDIDATES):
        if name and (found := base.token_id(name)) is not None:
            return int(found)
    raise ConfigError(
        f"{option}: the tokenizer has no end-of-document token ({', '.join(EOD_CANDIDATES)});"
        " name one"
    )
