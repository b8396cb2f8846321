"""``qudata validate OUT_DIR --tokenizer T --template P``: token files against a tokenizer.

The ``-f packed`` and ``-f megatron`` files of a dataset hold token ids; the manifest
records which tokenizer made them (``tokenizer_identity``: the tiktoken encoding and its
rank file's sha256, or the ``tokenizer.json``'s sha256) and, per packed file, the
template's sha256 and the special ids it placed (``packing``). Given a tokenizer and/or a
template, :func:`token_findings` checks:

- the recorded identity equals the given tokenizer's, each recorded special id is that
  token's id in it, and the recorded template sha256 is the given template's;
- the sequences decode and re-encode to themselves with the given tokenizer (the whole
  text with the recorded special tokens as markers, else piece by piece between them:
  special-token text inside content is ordinary text); a Megatron sequence ends with the
  tokenizer's end-of-document id; a plain document cut at the end of a packed row is
  joined with its continuation in the next row before it is checked;
- with qudata's ChatML rendering (``template: chatml``, ``mask: assistant``), every token
  in the loss lies inside an assistant turn (from after ``<|im_start|>assistant\\n`` to
  its ``<|im_end|>``), whitespace aside. Other templates' masks are not re-derived here
  (the messages are not in the file).

All sequences are checked up to :data:`TOKEN_BUDGET` tokens a format; beyond it an even
sample (every k-th row or sequence of each file, k the format's tokens over the budget).
Each finding is ``(file, what)``.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from qudata.errors import ConfigError

__all__ = ["TOKEN_BUDGET", "TokenReport", "template_sha256", "token_findings"]

#: tokens of one format decoded and re-encoded before the check samples
TOKEN_BUDGET = 2_000_000
_IDENTITY_KEYS = ("encoding", "rank_file_sha256", "tokenizer_json_sha256")
_HELD = 64  # cut documents held until their continuation
_SHOWN = 5  # sequence findings shown per file; the rest are counted
_HEADER = "<|im_start|>assistant\n"
_END = "<|im_end|>"


@dataclass(slots=True)
class TokenReport:
    """What was checked: sequences checked and held per file, and the findings."""

    checked: dict[str, tuple[int, int]] = field(default_factory=dict)
    findings: list[tuple[str, str]] = field(default_factory=list)


def template_sha256(template: str) -> str:
    """The sha256 a packed file records for ``template`` (``chatml``, a path or a string)."""
    if template == "chatml":
        source = "chatml"
    else:
        from qudata.pack.hf_template import load_chat_template

        source = load_chat_template(template).source
    return hashlib.sha256(source.encode()).hexdigest()


def _identity_text(identity: dict[str, Any]) -> str:
    if "tokenizer_json_sha256" in identity:
        return f"tokenizer.json sha256 {str(identity['tokenizer_json_sha256'])[:12]}…"
    sha = str(identity.get("rank_file_sha256"))[:12]
    return f"{identity.get('encoding')} (rank file sha256 {sha}…)"


def token_findings(
    root: str, manifest: dict[str, Any], tokenizer: str | None, template: str | None
) -> TokenReport:
    """Check the packed and megatron files of the dataset under ``root`` (see the module)."""
    report = TokenReport()
    counter = vocab = None
    if tokenizer is not None:
        from qudata.pack.masks import Vocabulary
        from qudata.quality.tokens import get_token_counter

        counter = get_token_counter(tokenizer)
        vocab = Vocabulary(counter)
    config = manifest.get("config", {}).get("pack", {})
    for name in ("packed", "megatron"):
        stats = manifest.get("formats", {}).get(name)
        if stats is None:
            continue
        if counter is not None and vocab is not None:
            given = getattr(counter, "identity", {})
            recorded = stats.get("tokenizer_identity")
            if recorded is None:
                report.findings.append((name, "the manifest records no tokenizer identity"))
            elif any(recorded.get(k) != given.get(k) for k in _IDENTITY_KEYS):
                report.findings.append(
                    (
                        name,
                        f"made with {_identity_text(recorded)}, --tokenizer is "
                        f"{_identity_text(given)}",
                    )
                )
        checker = _Checker(name, vocab, counter, config.get(name) or {}, report)
        checker.stride = max(1, math.ceil(int(stats.get("tokens") or 0) / TOKEN_BUDGET))
        for entry in stats.get("files", []):
            path = entry["path"]
            packing = entry.get("packing") or {}
            if name == "packed" and path.endswith(".parquet"):
                if template is not None:
                    _check_template(report, path, packing, template_sha256(template))
                if vocab is not None:
                    checker.special_ids(path, packing.get("special_ids") or {})
                    checker.packed(os.path.join(root, path), path, packing)
            elif name == "megatron" and path.endswith(".idx") and vocab is not None:
                checker.megatron(os.path.join(root, path), path)
    return report


def _check_template(report: TokenReport, path: str, packing: dict[str, Any], want: str) -> None:
    recorded = packing.get("template_sha256")
    if recorded is None:
        report.findings.append((path, "the manifest records no template"))
    elif recorded != want:
        report.findings.append(
            (
                path,
                f"made with template {packing.get('template', '?')} (sha256 "
                f"{str(recorded)[:12]}…), --template has sha256 {want[:12]}…",
            )
        )


class _Checker:
    """The sequence checks of one format's files with one tokenizer."""

    def __init__(
        self, fmt: str, vocab: Any, counter: Any, options: dict[str, Any], report: TokenReport
    ) -> None:
        self.fmt, self.vocab, self.counter, self.options = fmt, vocab, counter, options
        self.report = report
        self._encoders: dict[tuple[str, ...], Callable[[str], Any]] = {}
        self._cut: set[str] = set()  # the documents cut at the end of a row, not yet continued
        #: their ids so far, where they start, their segments (the checked ones)
        self._pending: dict[str, tuple[list[int], str, int]] = {}
        self._failed: dict[str, int] = {}
        self.stride = 1  # every k-th row or sequence (see TOKEN_BUDGET)

    def _hold(self, doc: str, ids: list[int], where: str, parts: int) -> None:
        """Keep a cut document until its continuation (at most :data:`_HELD` at once: the
        oldest is then left unchecked)."""
        self._cut.add(doc)
        self._pending[doc] = (ids, where, parts)
        while len(self._pending) > _HELD:
            self._cut.discard(oldest := next(iter(self._pending)))
            del self._pending[oldest]

    def _finding(self, path: str, what: str) -> None:
        """A sequence's finding: the first :data:`_SHOWN` of a file, then a count."""
        self._failed[path] = self._failed.get(path, 0) + 1
        if self._failed[path] <= _SHOWN:
            self.report.findings.append((path, what))

    def _done(self, path: str, checked: int, held: int) -> None:
        more = self._failed.get(path, 0) - _SHOWN
        if more > 0:
            self.report.findings.append((path, f"{more:,} more sequences differ"))
        self.report.checked[path] = (checked, held)

    def special_ids(self, path: str, recorded: dict[str, int]) -> None:
        for token, wanted in recorded.items():
            found = self.vocab.token_id(token)
            if found != wanted:
                self.report.findings.append(
                    (path, f"special token {token!r} is id {wanted} here, {found} in --tokenizer")
                )

    def _encoder(self, markers: Sequence[str]) -> Callable[[str], Any]:
        key = tuple(sorted(markers))
        if key not in self._encoders:
            self._encoders[key] = self.vocab.encoder(list(key))
        return self._encoders[key]

    def reencodes(self, ids: list[int], markers: dict[str, int]) -> Any:
        """The :class:`~qudata.pack.masks.Encoded` of the decoded ids when the whole text
        re-encodes to them; ``True`` when only piece by piece (between the markers) does;
        ``False`` when neither."""
        if any(not 0 <= i < self.vocab.vocab_size for i in ids):
            return False
        encoded = self._encoder(list(markers))(self.vocab.decode(ids))
        if encoded.ids == ids:
            return encoded
        marker_ids = set(markers.values())
        low = 0
        for high in [*(i for i, t in enumerate(ids) if t in marker_ids), len(ids)]:
            if high > low:
                piece = ids[low:high]
                again = self.vocab.encode_batch([self.vocab.decode(piece)])[0]
                if again != piece:
                    return False
            low = high + 1
        return True

    def packed(self, full: str, path: str, packing: dict[str, Any]) -> None:
        """Every (or every k-th) sequence of a packed Parquet file."""
        import pyarrow.parquet as pq

        markers = {str(k): int(v) for k, v in (packing.get("special_ids") or {}).items()}
        ends = {*markers.values(), *getattr(self._base(), "special_tokens", {}).values()}
        chatml = packing.get("template") == "chatml" and self.options.get("mask") != "all"
        seq_len = int(packing.get("seq_len") or 0)
        stride = self.stride
        checked = held = 0
        try:
            number = 0
            for batch in pq.ParquetFile(full).iter_batches(batch_size=64):
                for row in batch.to_pylist():
                    number += 1
                    sampled = not (number - 1) % stride
                    segments = list(_segments(row))
                    for k, (doc, ids, mask) in enumerate(segments):
                        held += 1
                        where = f"row {number}, sequence {k + 1}"
                        plain = all(mask[1:])  # a document (Bridge: its first token unknown)
                        continues = k == 0 and doc in self._cut and plain
                        self._cut.discard(doc)
                        last = k == len(segments) - 1 and len(row["input_ids"]) == seq_len
                        cut = last and plain and ids[-1] not in ends
                        before = self._pending.pop(doc, None) if continues else None
                        if before is not None:
                            ids, where, parts = before[0] + ids, before[1], before[2] + 1
                        elif continues:  # a piece whose start was not checked
                            if cut:
                                self._cut.add(doc)
                            continue
                        else:
                            parts = 1
                        if not sampled and before is None:
                            if cut:
                                self._cut.add(doc)
                            continue
                        if cut:  # continued in a later row (BFD may place it anywhere)
                            self._hold(doc, ids, where, parts)
                            continue
                        checked += parts
                        self._sequence(path, where, ids, mask if chatml else None, markers)
        except (OSError, ValueError, KeyError) as exc:
            self.report.findings.append((path, f"cannot read its sequences: {exc}"))
        self._done(path, checked, held)

    def _base(self) -> Any:
        return getattr(self.counter, "counter", self.counter)

    def _sequence(
        self,
        path: str,
        where: str,
        ids: list[int],
        mask: list[int] | None,
        markers: dict[str, int],
    ) -> None:
        found = self.reencodes(ids, markers)
        if found is False:
            self._finding(path, f"{where}: its ids do not re-encode from their decoded text")
            return
        if mask is None or found is True or all(mask[1:]):
            return
        outside = _outside_assistant(found, self.vocab.decode(ids), mask)
        if outside is not None:
            self._finding(
                path, f"{where}: a token in the loss is outside the assistant turns: {outside!r}"
            )

    def megatron(self, full: str, path: str) -> None:
        """Every (or every k-th) sequence of a ``.bin`` / ``.idx`` pair."""
        import numpy as np

        from qudata.pack.eod import end_of_document
        from qudata.pack.markup import CHATML_MARKERS

        try:
            eod = end_of_document(
                self._base(), self.options.get("eod_token"), option="pack.megatron.eod_token"
            )
        except ConfigError as exc:
            self.report.findings.append((path, str(exc)))
            return
        markers = {m: i for m in CHATML_MARKERS if (i := self.vocab.token_id(m)) is not None}
        if self.options.get("text") != "render":
            markers = {}
        with open(full, "rb") as handle:
            head = handle.read(34)
            if len(head) < 34:
                self.report.findings.append((path, "not a Megatron index"))
                return
            _version, code, count, _docs = struct.unpack("<QBQQ", head[9:34])
            sizes = np.frombuffer(handle.read(4 * count), dtype="<i4")
            offsets = np.frombuffer(handle.read(8 * count), dtype="<i8")
        dtype = np.dtype("<u2" if code == 8 else "<i4")
        data = np.memmap(full[: -len(".idx")] + ".bin", dtype=dtype, mode="r")
        stride = self.stride
        checked = 0
        for k in range(0, count, stride):
            start = int(offsets[k]) // dtype.itemsize
            ids = data[start : start + int(sizes[k])].tolist()
            checked += 1
            if not ids or ids[-1] != eod:
                self._finding(
                    path, f"sequence {k + 1}: does not end with the end-of-document id {eod}"
                )
                continue
            self._sequence(path, f"sequence {k + 1}", ids[:-1], None, markers)
        self._done(path, checked, count)


def _segments(row: dict[str, Any]) -> Iterator[tuple[str, list[int], list[int]]]:
    """``(doc, ids, mask)`` of each sequence of a packed row (TRL's columns, or
    Megatron-Bridge's: its rolled ``loss_mask`` unrolled, a sequence's first token 0)."""
    ids = row["input_ids"]
    if "seq_lengths" in row:
        docs, mask, at = row.get("doc_ids") or [], row["assistant_masks"], 0
        for k, size in enumerate(row["seq_lengths"]):
            doc = docs[k] if k < len(docs) else ""
            yield doc, ids[at : at + size], mask[at : at + size]
            at += size
        return
    starts = [*row["seq_start_id"], len(ids)]
    rolled = row["loss_mask"]
    for k in range(len(starts) - 1):
        low, high = starts[k], starts[k + 1]
        yield "", ids[low:high], [0, *rolled[low : high - 1]]


def _outside_assistant(encoded: Any, text: str, mask: list[int]) -> str | None:
    """The text of the first token in the loss outside every assistant turn (whitespace
    aside), or ``None``."""
    spans = []
    at = text.find(_HEADER)
    while at >= 0:
        start = at + len(_HEADER)
        close = text.find(_END, start)
        end = len(text) if close < 0 else close + len(_END)
        spans.append((start, end))
        at = text.find(_HEADER, end)
    for index, flag in enumerate(mask):
        if not flag:
            continue
        low, high = encoded.starts[index], encoded.ends[index]
        inside = any(s <= low and high <= e for s, e in spans)
        if inside:
            continue
        part = text[low:high]
        trimmed = [(max(low, s), min(high, e)) for s, e in spans if s < high and low < e]
        rest = part
        for s, e in trimmed:
            rest = rest.replace(text[s:e], "", 1)
        if rest.strip():
            return part
    return None
