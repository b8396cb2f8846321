"""The whole job, once: read -> normalise -> quality -> dedup -> format -> validate -> write.

The input is read once, in batches, and every requested format is written in
the same pass. Output goes to a hidden staging folder beside ``output_dir``;
``manifest.json`` is written last and the folder is renamed into place only
when the run completed, so a folder with a manifest is a complete dataset.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from qudata.config import Config, load_config, parse_size
from qudata.errors import InputError, QudataError
from qudata.export.card import render_card, render_parquet_card
from qudata.export.report import ReportData, render_report
from qudata.export.splits import SplitAssigner
from qudata.io.limits import bounded, bounded_id, too_long
from qudata.io.output_dir import (
    OutputLock,
    check_not_an_input,
    check_output_dir,
    make_staging,
    publish,
    recover,
)
from qudata.io.readers import RawRecord, read_records
from qudata.io.sources import Source, walk_inputs
from qudata.io.writers import AtomicFile
from qudata.models import Document, DocumentNormalizer
from qudata.pack.output import FormatOutput, count_once
from qudata.pack.registry import get_formatter
from qudata.quality.dedup import Deduplicator, exact_key, make_deduplicator
from qudata.quality.gate import QualityGate
from qudata.quality.report import Drop, Observations, RunReport
from qudata.quality.tokens import get_token_counter

__all__ = ["pack_dataset"]

BATCH_SIZE = 512
BATCH_CHARS = 1_000_000


def pack_dataset(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    config: Config | dict[str, Any] | str | os.PathLike[str] | None = None,
    formats: Iterable[str] | None = None,
    overwrite: bool | None = None,
    on_progress: Callable[[int], None] | None = None,
    command: str | None = None,
) -> RunReport:
    """Pack ``inputs`` (files, folders, globs, ``-``) into a dataset folder; return the account.

    ``command`` is shown in the dataset card as the command that made the folder.

    Example::

        report = pack_dataset(["docs.jsonl"], "out", formats=["chatml", "jsonl"])
        assert report.balanced()
    """
    overrides: dict[str, Any] = {}
    if formats is not None:
        overrides["pack"] = {"formats": list(formats)}
    if overwrite is not None:
        overrides["output"] = {"overwrite": overwrite}
    cfg = load_config(config, overrides=overrides)
    out = Path(output_dir)
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    arguments = [os.fspath(item) for item in inputs]
    # never write over, into or around an input (files found in folders are checked next)
    check_not_an_input(out, [a for a in arguments if not glob.has_magic(a)], [])
    if cfg.engine.name == "ray":
        from qudata.engines.ray import pack_with_ray

        return pack_with_ray(arguments, out, cfg, on_progress=on_progress, command=command)
    walk = walk_inputs(arguments, exclude=out)
    check_not_an_input(out, walk.folders, [s.path for s in walk.sources])
    run = _Run(cfg, out, on_progress, command)
    run.report.skipped.update(walk.skipped)
    return run.run(walk.sources)


class _Run:
    def __init__(
        self,
        cfg: Config,
        output_dir: Path,
        on_progress: Callable[[int], None] | None,
        command: str | None,
    ) -> None:
        from qudata import __version__

        self.cfg = cfg
        self.output_dir = output_dir
        self.on_progress = on_progress
        self.command = command
        # ``output.overwrite`` says how to write, not what: it is left out so that a rerun
        # with --overwrite writes the same bytes
        config = cfg.model_dump(mode="json", exclude={"output": {"overwrite"}})
        self.report = RunReport(qudata_version=__version__, config=config)
        self.seen = Observations()
        self.token_buckets: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
        self.normalize = DocumentNormalizer(text_key=cfg.input.text_key, id_key=cfg.input.id_key)

    def run(self, sources: list[Source]) -> RunReport:
        out = self.output_dir
        with OutputLock(out):
            recover(out)  # before the checks: a restored dataset is not replaced unasked
            check_output_dir(out, overwrite=self.cfg.output.overwrite)
            staging = make_staging(out)
            try:
                self._pack(sources, staging)
                self._publish(staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        self.report.output_dir = str(out)
        return self.report

    def _pack(self, sources: list[Source], staging: Path) -> None:
        cfg = self.cfg
        counter = self._token_counter()
        gate = QualityGate(cfg.quality, with_components=cfg.quality.score_components)
        dedup = self._deduplicator()
        splitter = SplitAssigner(cfg.output.split, seed=cfg.output.seed)
        # every format and split has its own shuffler: at most 512 bucket files open in all
        shufflers = len(cfg.pack.formats) * len(cfg.output.split)
        buckets = max(4, min(self._shuffle_buckets(sources), 512 // shufflers))
        outputs = [
            FormatOutput(
                get_formatter(name, cfg),
                staging,
                output=cfg.output,
                counter=counter,
                shuffle_buckets=buckets,
            )
            for name in cfg.pack.formats
        ]
        rejects = AtomicFile(staging / "rejects.jsonl")

        def reject(doc: Document, drop: Drop, fmt: str | None) -> None:
            _reject(rejects, doc, drop, fmt=fmt)

        try:
            with rejects:
                for batch in _batched(self._documents(sources, rejects), BATCH_SIZE):
                    kept = self._checks(batch, gate, dedup, counter, reject)
                    self._add_metadata(kept, counter)
                    if splitter.single:
                        splits = [splitter.names[0]] * len(kept)
                    else:
                        splits = [splitter.assign(self._cluster(doc)) for doc in kept]
                    for out in outputs:
                        out.write_batch(kept, splits, reject)
                    if self.on_progress is not None:
                        self.on_progress(self.report.read)
            for out in outputs:
                stats = out.close()
                for split, histogram in out.histograms.items():
                    self.token_buckets[(out.name, split)] = histogram.buckets()
                if counter is not None:
                    stats.tokenizer = counter.name
                    stats.tokens_exact = counter.exact
                    stats.token_limit_enforced = out.limit is not None
                self.report.formats[out.name] = stats
        except BaseException:
            for out in outputs:
                out.abort()
            raise
        finally:
            if dedup is not None:
                dedup.close()

    # Hooks of the Ray engine (qudata.engines.ray), which feeds this run precomputed work.
    def _token_counter(self) -> Any:
        return get_token_counter(self.cfg.quality.tokenizer)

    def _deduplicator(self) -> Deduplicator | None:
        dedup = self.cfg.dedup
        return make_deduplicator(
            dedup.method, threshold=dedup.threshold, num_perm=dedup.num_perm, ngram=dedup.ngram
        )

    def _shuffle_buckets(self, sources: list[Source]) -> int:
        return _shuffle_buckets(sources)

    @staticmethod
    def _cluster(doc: Document) -> str:
        """The duplicate-cluster key that decides the split (exact-text hash without dedup)."""
        if doc.cluster is None:
            doc.cluster = exact_key(doc.text).hex()
        return doc.cluster

    def _add_metadata(self, docs: list[Document], counter: Any) -> None:
        """``output.add_metadata``: computed fields, on request only."""
        wanted = self.cfg.output.add_metadata
        if not wanted:
            return
        counts = (
            count_once(counter, [d.text for d in docs]) if counter and "tokens" in wanted else {}
        )
        for doc in docs:
            if "chars" in wanted:
                doc.metadata["chars"] = len(doc.text)
            if "words" in wanted:
                doc.metadata["words"] = len(doc.text.split())
            if "tokens" in wanted:
                doc.metadata["tokens"] = counts.get(id(doc.text))

    def _checks(
        self,
        batch: list[Document],
        gate: QualityGate,
        dedup: Deduplicator | None,
        counter: Any,
        reject: Callable[[Document, Drop, str | None], None],
    ) -> list[Document]:
        """Top-level checks (quality, then duplicates); dropped documents leave the account
        here. Only documents that pass the quality gate take part in deduplication, so a
        dropped document is never the "kept" copy that its later duplicates point to."""
        drops: dict[int, Drop] = {}
        for number, doc in enumerate(batch):
            drop = gate.check(doc) if gate.active else None
            self.seen.add_score(doc.quality_score)
            if drop is not None:
                drops[number] = drop
        if dedup is not None:
            passed = [n for n in range(len(batch)) if n not in drops]
            verdicts = dedup.check_batch(
                [(batch[n].id, self._dedup_text(batch[n])) for n in passed]
            )
            for number, verdict in zip(passed, verdicts, strict=True):
                batch[number].cluster = verdict.cluster_key
                if verdict.duplicate_of is not None:
                    drops[number] = Drop(
                        verdict.reason or "duplicate",
                        f"duplicate of {verdict.duplicate_of}",
                        {"duplicate_of": verdict.duplicate_of},
                    )
        kept = [doc for number, doc in enumerate(batch) if number not in drops]
        for doc in kept:
            self.seen.add_source(doc.source)
        dropped = [(batch[number], drops[number]) for number in sorted(drops)]
        if dropped and counter is not None:
            counts = count_once(counter, [doc.text for doc, _ in dropped])
            for doc, drop in dropped:
                self.report.dropped_tokens[drop.reason] += counts[id(doc.text)]
        self.report.accepted += len(kept)
        for doc, drop in dropped:
            self.report.dropped[drop.reason] += 1
            reject(doc, drop, None)
        return kept

    def _dedup_text(self, doc: Document) -> str:
        """A conversation is compared on the content of the configured roles."""
        if doc.messages is None:
            return doc.text
        roles = set(self.cfg.dedup.roles)
        return "\n\n".join(
            str(m.get("content") or "") for m in doc.messages if m.get("role") in roles
        )

    def _documents(self, sources: list[Source], rejects: AtomicFile) -> Iterator[Document]:
        """Readable documents; every other record is counted and sent to ``rejects``."""
        on_error = self.cfg.input.on_error
        max_line_bytes = parse_size(self.cfg.input.max_line_bytes)
        for source in sources:
            digest = hashlib.sha256()
            before = self.report.read
            sha256: str | None = None
            try:
                for raw in read_records(
                    source,
                    text_key=self.cfg.input.text_key,
                    id_key=self.cfg.input.id_key,
                    digest=digest,
                    max_line_bytes=max_line_bytes,
                    max_document_chars=self.cfg.input.max_document_chars,
                ):
                    self.report.read += 1
                    doc = self._normalize(raw, on_error, rejects)
                    if doc is not None:
                        yield doc
            except InputError as exc:
                self._unreadable(exc, rejects)
            else:
                sha256 = digest.hexdigest()
            self.report.inputs.append(
                {"path": source.name, "sha256": sha256, "records": self.report.read - before}
            )

    def _unreadable(self, exc: QudataError, rejects: AtomicFile) -> None:
        """An input that cannot be read (on): stop (``on_error: fail``), or count it as one
        record read and dropped with the error's reason, and go on with the next input."""
        if self.cfg.input.on_error == "fail" or not isinstance(exc, InputError):
            raise exc
        self.report.read += 1
        self.report.dropped[exc.reason] += 1
        _write_reject(rejects, None, exc.source, exc.line, None, exc.reason, exc.detail)

    def _normalize(self, raw: RawRecord, on_error: str, rejects: AtomicFile) -> Document | None:
        reason = raw.reason
        if raw.error is None:
            try:
                doc = self.normalize(raw.row, origin=raw.origin, line=raw.line)
            except InputError as exc:
                detail = exc.detail
            else:
                long = too_long(doc, self.cfg.input.max_document_chars)
                if long is None:
                    return doc
                detail, reason = long, "document_too_long"
        else:
            detail = raw.error
        if on_error == "fail":
            raise InputError(detail, source=raw.origin, line=raw.line, reason=reason)
        self.report.dropped[reason] += 1
        row_id = raw.row.get(self.cfg.input.id_key) if raw.row else None
        _write_reject(rejects, None, raw.origin, raw.line, row_id, reason, detail)
        return None

    def _publish(self, staging: Path) -> None:
        """Card and report, then the manifest last, then the folder into place."""
        manifest = self.report.as_manifest()
        features = {
            name: stats.features
            for name, stats in self.report.formats.items()
            if stats.features is not None
        }
        card = render_card(manifest, command=self.command, features=features)
        _write_text(staging / "README.md", card)
        if "parquet" in manifest["formats"]:
            _write_text(staging / "parquet" / "README.md", render_parquet_card(manifest))
        _write_text(staging / "report.html", render_report(self._report_data(manifest)))
        data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
        _write_text(staging / "manifest.json", data.decode("utf-8"))
        publish(staging, self.output_dir)

    def _report_data(self, manifest: dict[str, Any]) -> ReportData:
        seen = self.seen
        ranked = seen.sources.most_common()
        sources = ranked[:20]
        if len(ranked) > 20:
            sources.append(("other", sum(n for _, n in ranked[20:])))
        return ReportData(
            title="qudata dataset report",
            qudata_version=manifest["qudata_version"],
            counts=manifest["counts"],
            formats=manifest["formats"],
            token_histograms=self.token_buckets,
            quality_histogram=[(i / 20, (i + 1) / 20, n) for i, n in enumerate(seen.quality_bins)],
            quality_threshold=self.cfg.quality.min_quality_score,
            unscored=seen.unscored,
            sources=sources,
        )


def _write_text(path: Path, text: str) -> None:
    with AtomicFile(path) as out:
        out.write(text.encode("utf-8"))


def _reject(rejects: AtomicFile, doc: Document, drop: Drop, *, fmt: str | None) -> None:
    _write_reject(rejects, fmt, doc.origin, doc.line, doc.id, drop.reason, drop.detail, drop.extra)


def _write_reject(
    rejects: AtomicFile,
    fmt: str | None,
    origin: str | None,
    line: int | None,
    doc_id: Any,
    reason: str,
    detail: str,
    extra: dict[str, Any] | None = None,
) -> None:
    entry = {
        "format": fmt,
        "source": origin,
        "line": line,
        "id": bounded_id(doc_id),
        "reason": reason,
        "detail": bounded(detail),
    }
    if extra:
        entry.update(extra)
    rejects.write(orjson.dumps(entry) + b"\n")


def _shuffle_buckets(sources: list[Source]) -> int:
    """About 32 MB of input per shuffle bucket, between 16 and 1024 buckets."""
    size = sum(os.path.getsize(s.path) for s in sources if s.path != "-" and s.problem is None)
    return max(16, min(1024, size // (32 << 20) + 1))


def _batched(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    """Batches of at most ``size`` documents or about BATCH_CHARS characters of text, so
    memory stays flat when documents are large."""
    batch: list[Document] = []
    chars = 0
    for doc in items:
        batch.append(doc)
        chars += len(doc.text)
        if len(batch) >= size or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch
