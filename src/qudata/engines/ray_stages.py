"""Worker side of the Ray engine: reading and preparing documents, one Ray Data batch at a time.

Every record is named by its position ``file index << 40 | line``, so "first seen" means
the same as in the local engine (lowest input file, then line). Rows travel as Arrow
tables; a document travels pickled (its metadata may hold any type a reader produced).

Row kinds of the document stream: ``DOC`` (a readable document), ``INVALID`` (a record
that is counted and rejected, or stops the run under ``on_error: fail``), ``ERROR`` (the
input stopped with an error, raised by the driver when the stream reaches it) and
``INPUT`` (the last row of an input: its sha256).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

from qudata.config import Config, InputConfig, QualityConfig, parse_size
from qudata.errors import InputError, MissingExtraError, QudataError
from qudata.io.limits import too_long
from qudata.io.readers import RawRecord, read_records
from qudata.io.sources import Source
from qudata.models import Document, DocumentNormalizer, token_texts
from qudata.quality.dedup import dedup_text, exact_key, exact_keys

__all__ = [
    "DOC",
    "ERROR",
    "INPUT",
    "INVALID",
    "LAST_LINE",
    "LINE_BITS",
    "Prepare",
    "decode_error",
    "dedup_text",
    "is_uri",
    "local_copy",
    "read_documents",
    "read_texts",
    "sign_texts",
]

LINE_BITS = 40
LAST_LINE = (1 << LINE_BITS) - 1
DOC, INVALID, ERROR, INPUT = 0, 1, 2, 3
ROWS_PER_BATCH = 512
BYTES_PER_BATCH = 4 << 20


def is_uri(path: str) -> bool:
    """``s3://bucket/x.jsonl``, ``file:///data/x.jsonl``: read through fsspec."""
    return "://" in path


def encode_error(exc: QudataError) -> bytes:
    return pickle.dumps((type(exc), exc.args, exc.__dict__))


def decode_error(data: bytes) -> QudataError:
    """The error a worker met, rebuilt with its message and attributes."""
    cls, args, attributes = pickle.loads(data)
    exc: QudataError = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(attributes)
    return exc


@contextmanager
def local_copy(source: Source) -> Iterator[Source]:
    """``source`` itself, or for a URI a temporary local copy that keeps its name."""
    if not is_uri(source.path):
        yield source
        return
    try:
        import fsspec
    except ImportError:
        raise MissingExtraError("ray", "fsspec", feature=f"Reading {source.path}") from None
    folder = tempfile.mkdtemp(prefix="qudata-input-")
    try:
        local = os.path.join(folder, "input" + _suffixes(source.path))
        try:
            with fsspec.open(source.path, "rb") as remote, open(local, "wb") as out:
                shutil.copyfileobj(remote, out, 1 << 20)
        except OSError as exc:
            raise InputError(f"cannot read: {exc}", source=source.name) from None
        yield Source(local, source.kind, source.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _suffixes(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.split(".", 1)[1] if "." in name else ""


class _Rows:
    """Rows of one output batch: position, kind, payload."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.pos: list[int] = []
        self.kind: list[int] = []
        self.payload: list[bytes] = []
        self.size = 0

    def add(self, pos: int, kind: int, payload: bytes) -> None:
        self.pos.append(pos)
        self.kind.append(kind)
        self.payload.append(payload)
        self.size += len(payload)

    @property
    def full(self) -> bool:
        return len(self.pos) >= ROWS_PER_BATCH or self.size >= BYTES_PER_BATCH

    def take(self) -> pa.Table:
        table = pa.table(
            {
                "pos": pa.array(self.pos, pa.int64()),
                "kind": pa.array(self.kind, pa.int8()),
                "payload": pa.array(self.payload, pa.large_binary()),
            }
        )
        self._reset()
        return table


def read_documents(
    batch: dict[str, np.ndarray], *, sources: list[Source], input_cfg: InputConfig
) -> Iterator[pa.Table]:
    """Every record of the inputs numbered in ``batch["f"]``, normalised, in file order.

    A document's derived id (no id in the input) is left without its ``-2``, ``-3``
    suffix: the driver adds it in input order, as the local engine does.
    """
    for f in batch["f"].tolist():
        source = sources[f]
        rows = _Rows()
        digest = hashlib.sha256()
        try:
            with local_copy(source) as local:
                text_key, id_key = input_cfg.text_field, input_cfg.id_field
                for raw in read_records(
                    local,
                    text_key=text_key,
                    id_key=id_key,
                    digest=digest,
                    max_line_bytes=parse_size(input_cfg.max_line_bytes),
                    max_document_chars=input_cfg.max_document_chars,
                ):
                    doc = _normalized(raw, input_cfg)
                    if isinstance(doc, Document):
                        derived = raw.row is not None and raw.row.get(id_key) in (None, "")
                        payload = pickle.dumps((doc, derived), protocol=5)
                        rows.add((f << LINE_BITS) | raw.line, DOC, payload)
                    else:
                        row_id = raw.row.get(id_key) if raw.row else None
                        payload = pickle.dumps((raw.origin, raw.line, row_id, *doc), protocol=5)
                        rows.add((f << LINE_BITS) | raw.line, INVALID, payload)
                    if rows.full:
                        yield rows.take()
        except QudataError as exc:
            # the driver rejects the input (or stops the run) here, then records it
            rows.add((f << LINE_BITS) | (LAST_LINE - 1), ERROR, encode_error(exc))
            rows.add((f << LINE_BITS) | LAST_LINE, INPUT, b"")
        else:
            rows.add((f << LINE_BITS) | LAST_LINE, INPUT, digest.hexdigest().encode())
        yield rows.take()


def _normalized(raw: RawRecord, cfg: InputConfig) -> Document | tuple[str, str]:
    """The document of a record, or why it is invalid and its drop code (as
    ``_Run._normalize``). A fresh normaliser each time: a derived id gets its repeat
    suffix on the driver."""
    if raw.error is not None:
        return raw.error, raw.reason
    try:
        doc = DocumentNormalizer.from_input(cfg)(raw.row, origin=raw.origin, line=raw.line)
    except InputError as exc:
        return exc.detail, exc.reason
    detail = too_long(doc, cfg.max_document_chars)
    return doc if detail is None else (detail, "document_too_long")


def read_texts(
    batch: dict[str, np.ndarray],
    *,
    sources: list[Source],
    input_cfg: InputConfig,
    roles: list[str],
    quality: QualityConfig,
    config: Config,
) -> Iterator[pa.Table]:
    """``(position, text compared for duplicates)`` of every readable document that passes
    the quality gate and the checks (only those take part in deduplication, as in the
    local engine).

    An input that stops with an error stops here too; the driver raises that error
    when the document stream reaches it.
    """
    from qudata.quality.checks import build_checks
    from qudata.quality.gate import QualityGate

    gate = QualityGate(quality)
    checks = build_checks(config)
    for f in batch["f"].tolist():
        rows = _Rows()
        try:
            with local_copy(sources[f]) as local:
                for raw in read_records(
                    local,
                    text_key=input_cfg.text_field,
                    id_key=input_cfg.id_field,
                    max_line_bytes=parse_size(input_cfg.max_line_bytes),
                    max_document_chars=input_cfg.max_document_chars,
                ):
                    doc = _normalized(raw, input_cfg)
                    if isinstance(doc, Document) and _passes(doc, gate, checks):
                        text = dedup_text(doc, roles).encode("utf-8", "surrogatepass")
                        rows.add((f << LINE_BITS) | raw.line, DOC, text)
                        if rows.full:
                            yield _texts(rows.take())
        except QudataError:
            pass
        yield _texts(rows.take())


def _passes(doc: Document, gate: Any, checks: list[Any]) -> bool:
    """The document passes the quality gate and every check (as ``_Run._checks``)."""
    if gate.active and gate.check(doc) is not None:
        return False
    return all(check.check(doc) is None for check in checks)


def _texts(table: pa.Table) -> pa.Table:
    return table.select(["pos", "payload"]).rename_columns(["pos", "text"])


def sign_texts(table: pa.Table, *, near: tuple[int, int, int] | None) -> pa.Table:
    """Exact keys as two int64 columns ``hi``, ``lo``; with ``near`` = (num_perm, ngram,
    seed), also the pickled MinHash signature ``sig`` (as ``NearDeduplicator``'s)."""
    texts = [b.decode("utf-8", "surrogatepass") for b in table["text"].to_pylist()]
    columns: dict[str, Any] = {"pos": table["pos"]}
    keys: list[bytes] = []
    if not texts:
        if near is not None:
            columns["sig"] = pa.array([], pa.large_binary())
    elif near is None:
        keys = exact_keys(texts)
    else:
        from qudata.quality.near_dedup import signatures

        signed = signatures(texts, *near)
        keys = [key for key, _ in signed]
        columns["sig"] = pa.array([pickle.dumps(m) for _, m in signed], pa.large_binary())
    pairs = np.frombuffer(b"".join(keys), dtype="<i8").reshape(-1, 2)
    columns["hi"] = pa.array(pairs[:, 0], pa.int64())
    columns["lo"] = pa.array(pairs[:, 1], pa.int64())
    return pa.table(columns)


class Prepare:
    """The per-document work before formatting, in a pool of stateful Ray actors.

    Holds the token counter (built once per actor): counts each document's text and
    message contents, which the driver's counter then looks up instead of counting.
    Runs the quality gate (filling missing scores under ``quality.missing_score:
    score``; the driver's gate then only compares), and adds the exact key of the text
    compared for duplicates (``roles``; a kept document's cluster key), and without
    deduplication the cluster key that decides the split.
    """

    def __init__(
        self,
        *,
        tokenizer: str,
        quality: QualityConfig,
        roles: list[str] | None,
        cluster: bool,
        config: Config,
    ) -> None:
        from qudata.quality.checks import build_checks
        from qudata.quality.gate import QualityGate
        from qudata.quality.tokens import get_token_counter

        self.checks = build_checks(config)
        self.counter = get_token_counter(tokenizer, quality.token_threads or 1)  # one per actor
        self.gate = QualityGate(quality, with_components=quality.score_components)
        self.roles = roles
        self.cluster = cluster

    def __call__(self, table: pa.Table) -> pa.Table:
        kinds = table["kind"].to_pylist()
        payloads = table["payload"].to_pylist()
        rows = [i for i, kind in enumerate(kinds) if kind == DOC]
        docs = [pickle.loads(payloads[i]) for i in rows]
        counts: list[list[int] | None] = [None] * len(docs)
        if self.counter is not None:
            texts = [token_texts(doc) for doc, _ in docs]
            flat = self.counter.count_batch([t for group in texts for t in group])
            start = 0
            for n, group in enumerate(texts):
                counts[n] = flat[start : start + len(group)]
                start += len(group)
        for i, (doc, derived), doc_counts in zip(rows, docs, counts, strict=True):
            passed = _passes(doc, self.gate, self.checks)
            key = exact_key(dedup_text(doc, self.roles)) if self.roles else None
            if self.cluster:
                doc.cluster = exact_key(doc.text).hex()
            payloads[i] = pickle.dumps((doc, derived, key, doc_counts, passed), protocol=5)
        return table.set_column(2, "payload", pa.array(payloads, pa.large_binary()))
