"""Benchmark decontamination: drop a document that shares an n-gram with a benchmark item.

Both sides are normalised alike: NFC, casefolded, punctuation split from words (each
mark is a word of its own), whitespace collapsed. A document or conversation (each
message's content on its own) is ``contaminated`` when it holds any ``ngram``-word run
of any benchmark field; a field shorter than ``ngram`` words is matched whole when it
has at least :data:`MIN_WORDS` (shorter ones are ignored: they match too much by
chance). The benchmark n-grams are kept as sorted 64-bit hashes (12 bytes each with the
item they come from: about 2 MB for HumanEval, 10 MB for MMLU's test split).

Example::

    check = Decontaminator(DecontaminationConfig(files=["HumanEval.jsonl.gz"]))
    check.check(doc)  # Drop("contaminated", "shares a 13-word n-gram with ... HumanEval/0")
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

from qudata.account import Drop
from qudata.config import DecontaminationConfig
from qudata.errors import ConfigError, InputError
from qudata.models import Document

__all__ = ["MIN_WORDS", "Decontaminator", "normalized_words"]

MIN_WORDS = 8
_WORDS = re.compile(r"\w+|[^\w\s]")
_BASE = np.uint64(0x100000001B3)  # the n-gram hash: a polynomial of the word hashes


def normalized_words(text: str) -> list[str]:
    """``text`` as the words compared: NFC, casefolded, punctuation split off."""
    return _WORDS.findall(unicodedata.normalize("NFC", text).casefold())


class _Index:
    """Sorted n-gram hashes of one length, each with the benchmark item it comes from."""

    def __init__(self, hashes: list[Any], items: list[Any]) -> None:
        keys = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
        owners = np.concatenate(items) if items else np.empty(0, np.int32)
        order = np.argsort(keys, kind="stable")
        self.keys, self.items = keys[order], owners[order]

    def first(self, grams: Any) -> int | None:
        """The item of the first of ``grams`` found in the index, if any."""
        if not len(grams) or not len(self.keys):
            return None
        at = np.minimum(np.searchsorted(self.keys, grams), len(self.keys) - 1)
        hit = self.keys[at] == grams
        if not hit.any():
            return None
        return int(self.items[at[int(np.argmax(hit))]])


class Decontaminator:
    """The ``contaminated`` check of ``quality.decontamination``; counts drops per file."""

    name = "decontamination"

    def __init__(self, config: DecontaminationConfig) -> None:
        self.ngram = config.ngram
        self.fields = config.fields
        self.files = list(config.files)
        self.dropped: Counter[str] = Counter({f: 0 for f in self.files})
        self._owners: list[tuple[str, str]] = []  # item index -> (file, item id)
        hashes: dict[int, list[Any]] = {}
        items: dict[int, list[Any]] = {}
        for path in self.files:
            for item_id, text in self._benchmark_texts(path):
                words = self._hashes(text)
                length = min(self.ngram, len(words))
                if length < MIN_WORDS:
                    continue
                grams = self._grams(words, length)
                if length < self.ngram:  # matched whole
                    grams = grams[:1]
                hashes.setdefault(length, []).append(grams)
                owner = np.full(len(grams), len(self._owners), np.int32)
                items.setdefault(length, []).append(owner)
                self._owners.append((path, item_id))
        self._indexes = {n: _Index(hashes[n], items[n]) for n in sorted(hashes)}
        self.items = len({owner for owner in self._owners})

    def _benchmark_texts(self, path: str) -> Iterator[tuple[str, str]]:
        """``(item id, text)`` for every field of every record of one benchmark file."""
        from qudata.io.readers import read_records
        from qudata.io.sources import expand_inputs

        try:
            sources = expand_inputs([path])
        except InputError as exc:
            raise ConfigError(f"quality.decontamination.files: {exc}") from None
        for source in sources:
            for raw in read_records(source):
                if raw.row is None:
                    raise ConfigError(
                        f"quality.decontamination.files: {raw.origin}:{raw.line}: {raw.error}"
                    )
                row = raw.row
                item = row.get("task_id", row.get("id"))
                item_id = str(item) if item is not None else f"line {raw.line}"
                values = [row.get(f) for f in self.fields] if self.fields else [row]
                for text in _strings(values):
                    yield item_id, text

    def _hashes(self, text: str) -> Any:
        words = normalized_words(text)
        return np.fromiter((hash(w) for w in words), np.int64, len(words)).view(np.uint64)

    def _grams(self, words: Any, n: int) -> Any:
        """The hash of every run of ``n`` words (a polynomial, wrapping at 2**64)."""
        count = len(words) - n + 1
        if count <= 0:
            return np.empty(0, np.uint64)
        grams = np.zeros(count, np.uint64)
        with np.errstate(over="ignore"):
            for k in range(n):
                grams = grams * _BASE + words[k : k + count]
        return grams

    def describe(self) -> str:
        files = ", ".join(self.files)
        return f"documents sharing a {self.ngram}-word n-gram with {files} were dropped"

    def check(self, doc: Document) -> Drop | None:
        if doc.messages is None:
            texts = [doc.text]
        else:
            texts = [m["content"] for m in doc.messages if isinstance(m.get("content"), str)]
        for text in texts:
            words = self._hashes(text)
            for length, index in self._indexes.items():
                item = index.first(self._grams(words, length))
                if item is not None:
                    path, item_id = self._owners[item]
                    self.dropped[path] += 1
                    detail = f"shares a {length}-word n-gram with {path} item {item_id}"
                    return Drop("contaminated", detail, {"benchmark": path, "item": item_id})
        return None


def _strings(value: Any) -> Iterator[str]:
    """Every string inside ``value`` (dicts and lists walked in order)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
