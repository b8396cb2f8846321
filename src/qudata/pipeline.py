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
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from qudata.config import Config, load_config, parse_size
from qudata.errors import ConfigError, InputError, MissingExtraError, QudataError
from qudata.export.card import render_card, render_parquet_card
from qudata.export.report import ReportData, render_report
from qudata.export.splits import SplitAssigner
from qudata.io.limits import bounded, bounded_id, too_long
from qudata.io.lines import read_lines
from qudata.io.output_dir import (
    OutputLock,
    check_not_an_input,
    check_output_dir,
    make_staging,
    publish,
    recover,
)
from qudata.io.readers import RawRecord, read_records
from qudata.io.sources import Source, walk_arguments
from qudata.io.writers import AtomicFile
from qudata.models import Document, DocumentNormalizer, token_texts
from qudata.pack.output import FormatOutput, count_once
from qudata.pack.registry import get_formatter
from qudata.pack.schema import MetadataSchema
from qudata.plan.mix import MixPlan, MixPlanner
from qudata.quality.checks import Check, build_checks
from qudata.quality.dedup import (
    Deduplicator,
    DedupVerdict,
    dedup_text,
    exact_key,
    make_deduplicator,
)
from qudata.quality.drop_log import DropLog
from qudata.quality.gate import QualityGate
from qudata.quality.report import Drop, Observations, RunReport
from qudata.quality.score import COMPONENTS
from qudata.quality.tokens import CountCache, get_token_counter

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
    if cfg.mix is not None:
        if inputs not in ((), [], None):
            raise ConfigError("give the inputs either as INPUT arguments or as mix.sources")
        inputs = [item.path for item in cfg.mix.sources]
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    arguments = [os.fspath(item) for item in inputs]
    # never write over, into or around an input (files found in folders are checked next)
    check_not_an_input(out, [a for a in arguments if not glob.has_magic(a)], [])
    if cfg.engine.name == "ray":
        try:
            from qudata.engines.ray import pack_with_ray
        except ImportError as exc:  # Ray, or what it brings (pyarrow, numpy), is missing
            if (exc.name or "").split(".")[0] not in ("ray", "numpy", "pyarrow"):
                raise
            raise MissingExtraError("ray", "ray", feature="--engine ray") from None

        return pack_with_ray(arguments, out, cfg, on_progress=on_progress, command=command)
    run = _Run(cfg, out, on_progress, command)
    found, argument_of = walk_arguments(arguments, out)
    run.report.skipped.update(found.skipped)
    if cfg.mix is not None:
        run.mix_source.update(argument_of)
    return run.run(found.sources)


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
        self.normalize = DocumentNormalizer.from_input(cfg.input)
        self.drops = DropLog(formats=len(cfg.pack.formats))
        self.checks: list[Check] = []
        self.mix_source: dict[str, int] = {}  # input name -> its mix source
        self.mix: MixPlan | None = None
        self.copies: dict[int, int] = {}  # id(document) -> copies, for the batch at hand
        self._spooled: Path | None = None

    def run(self, sources: list[Source]) -> RunReport:
        out = self.output_dir
        with OutputLock(out):
            recover(out)  # before the checks: a restored dataset is not replaced unasked
            check_output_dir(out, overwrite=self.cfg.output.overwrite)
            staging = make_staging(out)
            try:
                if self.cfg.mix is not None:
                    self.mix = self._plan_mix(sources)
                self._pack(sources, staging)
                self._check_written()
                self._publish(staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        self.report.output_dir = str(out)
        return self.report

    def _note_drop(
        self,
        origin: str | None,
        line: int | None,
        reason: str,
        detail: str,
        *,
        fmt: str | None,
        doc_id: Any = None,
    ) -> None:
        self.drops.add(origin, line, reason, detail, fmt=fmt, doc_id=doc_id)

    def _check_written(self) -> None:
        """No empty success: a run that wrote no document fails (exit 1) and publishes
        nothing; otherwise the summary notes files that were mostly rejected."""
        self.report.notes = self.drops.notes(self.report.inputs)
        if not any(stats.documents for stats in self.report.formats.values()):
            raise InputError(self.drops.nothing_written(self.report.read), reason="nothing_written")

    def _pack(self, sources: list[Source], staging: Path) -> None:
        cfg = self.cfg
        base = self._token_counter()
        counter = None if base is None else CountCache(base)  # each text counted once
        self.checks = build_checks(cfg)
        dedup = self._deduplicator()
        splitter = SplitAssigner(cfg.output.split, seed=cfg.output.seed)
        # every format and split has its own shuffler: at most 512 bucket files open in all
        shufflers = len(cfg.pack.formats) * len(cfg.output.split)
        buckets = max(4, min(self._shuffle_buckets(sources), 512 // shufflers))
        schema = None
        if _needs_schema(cfg):
            sources = self._spool_stdin(sources, staging)
            schema = self._learn_schema(sources)
        formatters = [get_formatter(name, cfg) for name in cfg.pack.formats]
        for formatter in formatters:
            formatter.schema = schema
        outputs = [
            FormatOutput(
                formatter,
                staging,
                output=cfg.output,
                counter=counter,
                shuffle_buckets=buckets,
            )
            for formatter in formatters
        ]
        rejects = AtomicFile(staging / "rejects.jsonl")

        def reject(doc: Document, drop: Drop, fmt: str | None) -> None:
            self._note_drop(doc.origin, doc.line, drop.reason, drop.detail, fmt=fmt, doc_id=doc.id)
            _reject(rejects, doc, drop, fmt=fmt)

        try:
            with rejects:
                for kept in self._kept_batches(sources, rejects, dedup, counter, reject):
                    self._add_metadata(kept, counter)
                    if splitter.single:
                        splits = [splitter.names[0]] * len(kept)
                    else:
                        splits = [splitter.assign(self._cluster(doc)) for doc in kept]
                    copies = [self.copies.get(id(doc), 1) for doc in kept]
                    for out in outputs:
                        out.write_batch(kept, splits, reject, copies=copies)
                    if self.on_progress is not None:
                        self.on_progress(self.report.read)
            if self.mix is not None and self.cfg.mix is not None:
                paths = [source.path for source in self.cfg.mix.sources]
                self.report.mix = self.mix.as_manifest(paths, self.cfg.mix.target_tokens)
            for check in self.checks:
                self.report.warnings.update(getattr(check, "warnings", {}))
                if check.name == "decontamination":  # drops per benchmark file
                    self.report.contaminated = dict(getattr(check, "dropped", {}))
            self._warn_unscored()
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
            if self._spooled is not None:
                self._spooled.unlink(missing_ok=True)

    def _spool_stdin(self, sources: list[Source], staging: Path) -> list[Source]:
        """Standard input copied to a file beside the staging folder, so the first pass
        and the second read the same bytes (the copy goes when the run ends)."""
        if not any(s.path == "-" for s in sources):
            return sources
        spool = staging.with_name(staging.name.replace("-partial-", "-stdin-"))
        self._spooled = spool
        with open(spool, "wb") as out:
            _spool(sys.stdin.buffer, out, parse_size(self.cfg.input.max_line_bytes))
        return [Source(str(spool), "jsonl", s.name) if s.path == "-" else s for s in sources]

    def _learn_schema(self, sources: list[Source]) -> MetadataSchema:
        """The first pass: every metadata key and message key of the readable input, with
        its type, so every record of an output is written with the same keys (see
        :mod:`qudata.pack.schema`). Unreadable records are left to the second pass."""
        cfg = self.cfg
        schema = MetadataSchema()
        normalize = DocumentNormalizer.from_input(cfg.input)
        for source in sources:
            for raw in self._schema_records(source):
                if raw.error is not None:
                    continue
                try:
                    doc = normalize(raw.row, origin=raw.origin, line=raw.line)
                except InputError:
                    continue
                schema.observe(doc)
        # keys the run adds after this pass
        for key in ("chars", "words", "tokens"):
            if key in cfg.output.add_metadata:
                schema.add(key, [0])
        if cfg.quality.missing_score == "score" and cfg.quality.score_components:
            schema.add("quality_components", [dict.fromkeys(COMPONENTS, 0.5)])
        return schema

    def _warn_unscored(self) -> None:
        """``min_quality_score`` filters only documents with a score: say how many had none."""
        quality = self.cfg.quality
        unscored = self.seen.unscored
        if quality.min_quality_score is None or quality.missing_score != "keep" or not unscored:
            return
        total = unscored + sum(self.seen.quality_bins)
        self.report.cautions.append(
            f"min_quality_score {quality.min_quality_score}: {unscored:,} of {total:,} "
            "documents had no quality_score and were kept unfiltered (quality.missing_score: "
            "keep; set it to drop or score to filter them)"
        )

    def _kept_batches(
        self,
        sources: list[Source],
        rejects: Any,
        dedup: Deduplicator | None,
        counter: CountCache | None,
        reject: Callable[[Document, Drop, str | None], None],
    ) -> Iterator[list[Document]]:
        """Batches of the documents that pass every check, deduplication and the mix,
        their texts counted (one batched pass that the formats reuse)."""
        gate = QualityGate(self.cfg.quality, with_components=self.cfg.quality.score_components)
        for batch in _batched(self._documents(sources, rejects), BATCH_SIZE):
            if counter is not None:
                counter.clear()
            kept = self._checks(batch, gate, dedup, counter, reject)
            if counter is not None:
                counter.count_batch([t for doc in kept for t in token_texts(doc)])
            yield kept

    def _plan_mix(self, sources: list[Source]) -> MixPlan:
        """A first pass over every input, through every check and deduplication, that
        counts the tokens each mix source keeps; nothing is written."""
        assert self.cfg.mix is not None
        survey = _Run(self.cfg, self.output_dir, None, None)
        survey.checks = build_checks(self.cfg)
        mix = self.cfg.mix
        planner = MixPlanner([s.weight for s in mix.sources], seed=mix.seed,
                             target_tokens=mix.target_tokens)  # fmt: skip
        # the survey is a plain local run (on Ray too: it holds compact counts only)
        base = survey._token_counter()
        assert base is not None  # the configuration requires a tokenizer with mix
        counter = CountCache(base)
        dedup = survey._deduplicator()
        try:
            for kept in survey._kept_batches(sources, _NoFile(), dedup, counter, _ignore):
                for doc in kept:
                    planner.observe(self._mix_source(doc), doc.id, _mix_tokens(doc, counter))
        finally:
            if dedup is not None:
                dedup.close()
        return planner.plan()

    def _mix_source(self, doc: Document) -> int:
        return self.mix_source[doc.origin or ""]

    # Hooks of the Ray engine (qudata.engines.ray), which feeds this run precomputed work.
    def _schema_records(self, source: Source) -> Iterator[RawRecord]:
        """The readable records of one input, for the schema pass: an input that stops
        with an error stops here too (the second pass reports it)."""
        cfg = self.cfg.input
        try:
            yield from read_records(
                source,
                text_key=cfg.text_field,
                id_key=cfg.id_field,
                max_line_bytes=parse_size(cfg.max_line_bytes),
            )
        except InputError:
            return

    def _token_counter(self) -> Any:
        return get_token_counter(self.cfg.quality.tokenizer, self.cfg.quality.token_threads)

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
        counts = {}
        if counter is not None and "tokens" in wanted:
            counts = count_once(counter, [d.text for d in docs])
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
            for check in self.checks:
                if drop is not None:
                    break
                drop = check.check(doc)
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
                    drops[number] = _duplicate_drop(verdict)
        self.copies.clear()
        if self.mix is not None:
            for number, doc in enumerate(batch):
                if number not in drops:
                    source = self._mix_source(doc)
                    copies = self.mix.copies(source, doc.id)
                    self.mix.record(source, _mix_tokens(doc, counter), copies)
                    if copies == 0:
                        drops[number] = Drop("mix_downsampled", "left out of the mix sample")
                    self.copies[id(doc)] = copies
        kept = [doc for number, doc in enumerate(batch) if number not in drops]
        for doc in kept:  # documents without a source are charted by their input file
            self.seen.add_source(doc.source or doc.origin)
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
        """A conversation is compared on the configured roles and its tools (see
        :func:`~qudata.quality.dedup.dedup_text`)."""
        return dedup_text(doc, self.cfg.dedup.roles)

    def _documents(self, sources: list[Source], rejects: Any) -> Iterator[Document]:
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
                    text_key=self.cfg.input.text_field,
                    id_key=self.cfg.input.id_field,
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

    def _unreadable(self, exc: QudataError, rejects: Any) -> None:
        """An input that cannot be read (on): stop (``on_error: fail``), or count it as one
        record read and dropped with the error's reason, and go on with the next input."""
        if self.cfg.input.on_error == "fail" or not isinstance(exc, InputError):
            raise exc
        self.report.read += 1
        self.report.dropped[exc.reason] += 1
        self._note_drop(exc.source, exc.line, exc.reason, exc.detail, fmt=None)
        _write_reject(rejects, None, exc.source, exc.line, None, exc.reason, exc.detail)

    def _normalize(self, raw: RawRecord, on_error: str, rejects: Any) -> Document | None:
        reason = raw.reason
        if raw.error is None:
            try:
                doc = self.normalize(raw.row, origin=raw.origin, line=raw.line)
            except InputError as exc:
                detail, reason = exc.detail, exc.reason
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
        row_id = raw.row.get(self.cfg.input.id_field) if raw.row else None
        self._note_drop(raw.origin, raw.line, reason, detail, fmt=None)
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
            mix=manifest.get("mix"),
            unscored=seen.unscored,
            sources=sources,
        )


class _NoFile:
    """A rejects file that keeps nothing (the mix's first pass writes no output)."""

    def write(self, data: bytes) -> None:
        pass


def _ignore(doc: Document, drop: Drop, fmt: str | None) -> None:
    pass


def _mix_tokens(doc: Document, counter: Any) -> int:
    """A document's tokens for the mix: its text's, or its messages' contents'."""
    texts = token_texts(doc)
    return sum(counter.count_batch(texts[1:] if doc.messages is not None else texts[:1]))


def _spool(stream: Any, out: Any, max_bytes: int) -> None:
    """Copy ``stream`` (standard input) to ``out`` in bounded disk and memory: a line over
    ``max_bytes`` becomes one of ``max_bytes + 1`` bytes with the same start, which the
    reader rejects as ``line_too_long`` at the same line; a long binary line ends the copy,
    as it ends the reading (so ``/dev/zero`` cannot fill the disk)."""
    for line in read_lines(stream, max_bytes):
        if isinstance(line, bytes):
            out.write(line)
            continue
        filler = b"\0" if line.binary else b" "
        out.write(line.prefix)
        for left in range(max_bytes + 1 - len(line.prefix), 0, -(1 << 20)):
            out.write(filler * min(left, 1 << 20))
        if line.binary:
            return
        out.write(b"\n")


def _duplicate_drop(verdict: DedupVerdict) -> Drop:
    """The reject of a duplicate; a near duplicate shows its estimated Jaccard similarity."""
    extra: dict[str, Any] = {"duplicate_of": verdict.duplicate_of}
    detail = f"duplicate of {verdict.duplicate_of}"
    if verdict.similarity is not None:
        extra["similarity"] = verdict.similarity
        detail += f" (estimated Jaccard similarity {verdict.similarity:.3f})"
    return Drop(verdict.reason or "duplicate", detail, extra)


def _needs_schema(cfg: Config) -> bool:
    """Whether a JSON output writes metadata or messages, whose keys vary by document."""
    formats = cfg.pack.formats
    if "chatml" in formats:
        return True
    plain = {"text", "id", "labels", "quality_score"}
    return "jsonl" in formats and not set(cfg.pack.jsonl.fields) <= plain


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
