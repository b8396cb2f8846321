"""Benchmark decontamination: drop a document that shares an n-gram with a benchmark item.

Both sides are reduced to the same words (:func:`normalized_words`): NFC, casefolded,
and only letters and digits count. A word is a run of letters, digits and combining
marks; punctuation, operators, brackets and markup separate words and never are words
themselves, so ``48 / 2 = <<48/2=24>>24`` is the five words ``48 2 48 2 24 24`` and
``for i in range(1, n + 1):`` the eight words ``for i in range 1 n 1``. In scripts
written without spaces (Chinese, Japanese, Thai: :mod:`qudata.unicode_scripts`) every
character is a word.

A document or conversation (each message's content on its own) is ``contaminated``
when it holds any ``ngram``-word run of a benchmark field in which at least half the
words hold a letter (runs of numbers, such as the arithmetic of a math solution, are
not evidence of a copy: :data:`MIN_LETTER_SHARE`); a field shorter than ``ngram`` words
is matched whole when it has at least :data:`MIN_WORDS` (shorter ones are ignored: they
match too much by chance). The reject names the matched n-gram, the benchmark file,
item, line and field, and where in the document it was found; the manifest's
``decontamination`` section counts the documents and items matched per file.

The benchmark n-grams are kept as sorted 64-bit hashes (12 bytes each with the field
they come from: about 2 MB for HumanEval, 10 MB for MMLU's test split).

Example::

    check = Decontaminator(DecontaminationConfig(files=["HumanEval.jsonl.gz"]))
    check.check(doc)  # Drop("contaminated", 'shares the 13-word n-gram "..." with ...')
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from qudata.account import Drop
from qudata.config import DecontaminationConfig
from qudata.errors import ConfigError, InputError
from qudata.models import Document
from qudata.quality.verdicts import VerdictMemo
from qudata.unicode_scripts import UNSPACED, UNSPACED_RANGES

__all__ = [
    "MIN_LETTER_SHARE",
    "MIN_WORDS",
    "Decontaminator",
    "benchmark_report",
    "normalized_words",
    "unindexed_cautions",
    "unindexed_files",
]

MIN_WORDS = 8
#: A benchmark n-gram is indexed when at least this share of its words hold a letter.
MIN_LETTER_SHARE = 0.5
#: Items listed per benchmark file in the manifest (the most matched first).
TOP_ITEMS = 10

# combining marks of the spaced scripts (Latin, Cyrillic, Hebrew, Arabic, Indic) belong
# to their word; the Indic blocks are taken whole but for the danda and double danda
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7"
    "\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed"
    "\u0900-\u0963\u0966-\u0dff"
)
_WORDS = re.compile(f"[{UNSPACED_RANGES}]|(?:[^\\W_{UNSPACED_RANGES}]|[{_MARKS}])+")
# the same words, faster, where they can be: an ASCII text's; a text without unspaced
# scripts', as runs of one character class once "_" (a word character to \w) is a space
_ASCII_WORDS = re.compile(r"[a-z0-9]+")
_SPACED_WORDS = re.compile(f"[\\w{_MARKS}]+")
_BASE = np.uint64(0x100000001B3)  # the n-gram hash: a polynomial of the word hashes
_FILTER_MAX_BITS = 24  # the index's filter: at most 16 MB


def normalized_words(text: str) -> list[str]:
    """``text`` as the words compared: NFC, casefolded, letters and digits only."""
    folded = unicodedata.normalize("NFC", text).casefold()
    if folded.isascii():
        return _ASCII_WORDS.findall(folded)
    if UNSPACED.search(folded) is None:
        return _SPACED_WORDS.findall(folded.replace("_", " "))
    return _WORDS.findall(folded)


@dataclass(frozen=True, slots=True)
class _Field:
    """Where benchmark n-grams come from."""

    path: str
    item: str
    line: int | None
    field: str


class _Index:
    """Sorted n-gram hashes of one length, each with the benchmark field it comes from."""

    def __init__(self, hashes: list[Any], owners: list[Any]) -> None:
        keys = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
        fields = np.concatenate(owners) if owners else np.empty(0, np.int32)
        order = np.argsort(keys, kind="stable")
        self.keys, self.owners = keys[order], fields[order]
        # a filter on the keys' low bits (about 1 in 32 of other n-grams passes it), so
        # that most of a document's n-grams are ruled out by one look-up each
        bits = min(_FILTER_MAX_BITS, max(10, (32 * len(keys)).bit_length()))
        self._mask = np.uint64((1 << bits) - 1)
        self._filter = np.zeros(1 << bits, np.bool_)
        self._filter[(self.keys & self._mask).astype(np.intp)] = True

    def first(self, grams: Any) -> tuple[int, int] | None:
        """``(position in grams, field)`` of the first of ``grams`` in the index."""
        if not len(grams) or not len(self.keys):
            return None
        maybe = np.flatnonzero(self._filter[(grams & self._mask).astype(np.intp)])
        if not len(maybe):
            return None
        candidates = grams[maybe]
        at = np.minimum(np.searchsorted(self.keys, candidates), len(self.keys) - 1)
        hit = self.keys[at] == candidates
        if not hit.any():
            return None
        first = int(np.argmax(hit))
        return int(maybe[first]), int(self.owners[at[first]])


class Decontaminator:
    """The ``contaminated`` check of ``quality.decontamination``.

    Counts documents dropped per benchmark file (``dropped``) and per benchmark item
    (``matched``, keyed by the JSON of ``[file, item]``; see :func:`benchmark_report`).
    """

    name = "decontamination"

    def __init__(self, config: DecontaminationConfig) -> None:
        self.ngram = config.ngram
        self.fields = config.fields
        self.files = list(config.files)
        self.dropped: Counter[str] = Counter({f: 0 for f in self.files})
        self.matched: Counter[str] = Counter()
        self._owners: list[_Field] = []  # index -> the benchmark field
        hashes: dict[int, list[Any]] = {}
        owners: dict[int, list[Any]] = {}
        for path in self.files:
            for owner, text in _benchmark_fields(path, self.fields):
                words = normalized_words(text)
                length = min(self.ngram, len(words))
                if length < MIN_WORDS:
                    continue
                grams = _grams(_hashes(words), length)
                if length < self.ngram:  # matched whole
                    grams = grams[:1]
                grams = grams[_worded(words, length)[: len(grams)]]
                if not len(grams):
                    continue
                hashes.setdefault(length, []).append(grams)
                owners.setdefault(length, []).append(
                    np.full(len(grams), len(self._owners), np.int32)
                )
                self._owners.append(owner)
        self._indexes = {n: _Index(hashes[n], owners[n]) for n in sorted(hashes)}
        self.items = len({(o.path, o.item) for o in self._owners})
        self.memo = VerdictMemo()  # map 1's verdicts, for map 2 (qudata.quality.verdicts)

    def describe(self) -> str:
        files = ", ".join(self.files)
        return f"documents sharing a {self.ngram}-word n-gram with {files} were dropped"

    def check(self, doc: Document) -> Drop | None:
        if doc.messages is None:
            texts: list[tuple[str, str]] = [("text", doc.text)]
        else:
            texts = [
                (f"messages[{i}].content", m["content"])
                for i, m in enumerate(doc.messages)
                if isinstance(m.get("content"), str)
            ]
        if not self.memo.active:  # neither map 1 recording nor map 2 replaying
            return self._check(texts)
        key = self.memo.key(texts)
        known, verdict = self.memo.get(key)
        if known:
            replayed = self._replay(verdict)
            if replayed is not False:
                return replayed
        drop = self._check(texts)
        self.memo.put(key, None if drop is None else [drop.detail, drop.extra])
        return drop

    def _replay(self, verdict: Any) -> Drop | Literal[False] | None:
        """A verdict map 1 recorded, its counters counted again (``False``: not one
        this check gives, so it checks again)."""
        if verdict is None:
            return None
        try:
            detail, extra = verdict
            path, item = extra["benchmark"], extra["item"]
        except (TypeError, ValueError, KeyError):
            return False
        if not (isinstance(detail, str) and path in self.dropped and isinstance(item, str)):
            return False
        self.dropped[path] += 1
        self.matched[json.dumps([path, item])] += 1
        return Drop("contaminated", detail, extra)

    def _check(self, texts: list[tuple[str, str]]) -> Drop | None:
        for where, text in texts:
            words = normalized_words(text)
            hashed = _hashes(words)
            grams, done = np.zeros(len(words), np.uint64), 0
            for length, index in self._indexes.items():  # shortest first
                grams = _longer(grams, hashed, done, length)
                done = length
                found = index.first(grams)
                if found is not None:
                    position, owner = found
                    return self._drop(self._owners[owner], where, words[position:][:length])
        return None

    def _drop(self, owner: _Field, where: str, words: list[str]) -> Drop:
        self.dropped[owner.path] += 1
        self.matched[json.dumps([owner.path, owner.item])] += 1
        ngram = " ".join(words)
        detail = (
            f'shares the {len(words)}-word n-gram "{ngram}" with {owner.path} item '
            f"{owner.item} ({owner.field}; found in {where})"
        )
        extra = {
            "benchmark": owner.path,
            "item": owner.item,
            "benchmark_line": owner.line,
            "benchmark_field": owner.field,
            "ngram": ngram,
            "field": where,
        }
        return Drop("contaminated", detail, extra)


def benchmark_report(dropped: Counter[str], matched: Counter[str]) -> dict[str, Any]:
    """The manifest's ``decontamination`` section from the check's summed counters:
    per benchmark file, the documents dropped, the items matched, and the
    :data:`TOP_ITEMS` items matched by the most documents."""
    items: dict[str, Counter[str]] = {path: Counter() for path in dropped}
    for key, n in matched.items():
        path, item = json.loads(key)
        items.setdefault(path, Counter())[item] += n
    return {
        path: {
            "documents": dropped.get(path, 0),
            "items": len(found),
            "top_items": dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_ITEMS]),
        }
        for path, found in items.items()
    }


def unindexed_files(config: DecontaminationConfig) -> list[str]:
    """The files of ``config`` that give no n-gram to match (empty, or no field of
    :data:`MIN_WORDS` words): a run against them decontaminates nothing. Reads each
    file up to its first usable field."""
    return [
        path
        for path in config.files
        if not any(
            len(normalized_words(text)) >= MIN_WORDS
            for _, text in _benchmark_fields(path, config.fields)
        )
    ]


def unindexed_cautions(section: dict[str, Any]) -> list[str]:
    """A warning for each of :func:`unindexed_files` (``section``: the run's
    ``quality.decontamination`` as in the manifest)."""
    config = DecontaminationConfig.model_validate(section)
    fields = f"of {', '.join(config.fields)} " if config.fields else ""
    return [
        f"quality.decontamination: {path} gives no n-gram to match (it is empty, or no "
        f"field {fields}has {MIN_WORDS} words): nothing was checked against it"
        for path in unindexed_files(config)
    ]


def _benchmark_fields(path: str, fields: list[str] | None) -> Iterator[tuple[_Field, str]]:
    """``(field, text)`` for every string field of every record of one benchmark file."""
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
            values = {f: row.get(f) for f in fields} if fields else row
            for name, text in _strings(values, ""):
                yield _Field(path, item_id, raw.line, name), text


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string inside ``value`` with its place (``question``, ``choices[2]``)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")


def _hashes(words: list[str]) -> Any:
    return np.fromiter(map(hash, words), np.int64, len(words)).view(np.uint64)


def _grams(words: Any, n: int) -> Any:
    """The hash of every run of ``n`` words (a polynomial, wrapping at 2**64)."""
    return _longer(np.zeros(len(words), np.uint64), words, 0, n)


def _longer(grams: Any, words: Any, done: int, n: int) -> Any:
    """:func:`_grams` of ``n`` words from those of ``done`` words (``done`` < ``n``): each
    run's polynomial continued over its next words (in place)."""
    count = len(words) - n + 1
    if count <= 0:
        return np.empty(0, np.uint64)
    grams = grams[:count]
    with np.errstate(over="ignore"):
        for k in range(done, n):
            np.multiply(grams, _BASE, out=grams)
            np.add(grams, words[k : k + count], out=grams)
    return grams


def _worded(words: list[str], n: int) -> Any:
    """Per run of ``n`` words: whether :data:`MIN_LETTER_SHARE` of them hold a letter."""
    letters = np.fromiter((not w.isdigit() for w in words), np.int64, len(words))
    totals = np.concatenate([[0], np.cumsum(letters)])
    return (totals[n:] - totals[:-n]) >= MIN_LETTER_SHARE * n
