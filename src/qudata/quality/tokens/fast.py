"""quicktok: a faster exact encoder of cl100k_base and o200k_base, used only once proven.

quicktok (``pip install 'qudata[fast]'``) bundles its own vocabularies. Before one is
used, the rank file is rebuilt from what quicktok loaded (every rank's bytes, in rank
order, as tiktoken's ``.tiktoken`` lines) and its sha256 must equal the published one;
its special tokens must have the published ids. The verdict is cached by the sha256 of
quicktok's data files and its version, in this process and in a small file beside
tiktoken's cache, so that a worker process does not rebuild the file again.

Its ids equal tiktoken's ``encode_ordinary`` (``tests/quality/test_token_fast.py``),
with tiktoken's own handling of lone surrogates applied (:func:`without_surrogates`).
``QUDATA_FAST_TOKENIZER=0`` turns it off; without quicktok, tiktoken is used.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["ENV", "enabled", "quicktok_encoding", "rank_file_of", "without_surrogates"]

#: set to 0 (or false, no, off) to use tiktoken even where quicktok is installed
ENV = "QUDATA_FAST_TOKENIZER"


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def without_surrogates(text: str) -> str:
    """``text`` as tiktoken encodes it when it holds a lone surrogate (which UTF-8 cannot):
    through UTF-16, a lone surrogate becoming U+FFFD and a pair its character."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def rank_file_of(encoding: Any, special: dict[str, int]) -> bytes:
    """The ``.tiktoken`` rank file of a quicktok ``encoding``: each rank's bytes, base64,
    and the rank, one line each, up to the first gap or special token."""
    lines = []
    for rank in range(min(special.values())):
        try:
            piece = encoding.decode_single_token_bytes(rank)
        except KeyError:
            break
        lines.append(base64.b64encode(piece) + b" %d\n" % rank)
    return b"".join(lines)


@cache
def quicktok_encoding(name: str, sha256: str, special: tuple[tuple[str, int], ...]) -> Any:
    """quicktok's encoding ``name`` when it is installed, :func:`enabled`, and proven to be
    the rank file of ``sha256`` with the ``special`` tokens; else None. Once per process."""
    if not enabled():
        return None
    try:
        import quicktok

        encoding = quicktok.get_encoding(name)
    except Exception:  # not installed, or an encoding it does not bundle
        return None
    key = _data_digest(quicktok, name)
    marker = _marker(f"{key} {sha256} {special}") if key else None
    if marker is not None and marker.is_file():
        return encoding
    specials = dict(special)
    try:
        same_specials = {t: encoding.encode_single_token(t) for t in specials} == specials
        same = same_specials and encoding.n_vocab == max(specials.values()) + 1
    except Exception:  # a special token quicktok does not know
        same = False
    if not same or hashlib.sha256(rank_file_of(encoding, specials)).hexdigest() != sha256:
        return None
    if marker is not None:
        _write_marker(marker)
    return encoding


def _data_digest(module: Any, name: str) -> str | None:
    """The sha256 of quicktok's version and its data files for ``name`` (None if unknown)."""
    folder = Path(module.__file__).parent / "data"
    short = name.removesuffix("_base")
    digest = hashlib.sha256(f"quicktok {getattr(module, '__version__', '?')} {name}\n".encode())
    try:
        for suffix in (".vocab", ".special"):
            digest.update((folder / (short + suffix)).read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


def _marker(claim: str) -> Path:
    """Where the verdict on ``claim`` (quicktok's data, the rank file and special tokens it
    must equal) is recorded: beside tiktoken's cache, named by its sha256."""
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    folder = cache or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    digest = hashlib.sha256(claim.encode()).hexdigest()
    return Path(folder, f"qudata-quicktok-{digest[:40]}.verified")


def _write_marker(marker: Path) -> None:
    """Record a verdict; a folder that cannot be written only means verifying again."""
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        partial = marker.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(b"verified\n")
        os.replace(partial, marker)
    except OSError:
        pass
