"""The Ray engine: ``qudata pack --engine ray`` runs the local pipeline's work on Ray Data.

The output is the local engine's, byte for byte (same records, same order, same shards,
``rejects.jsonl``, card and report); only ``config.engine`` in ``manifest.json`` differs.

What runs where:

- **Distributed (Ray Data)**: reading, parsing and normalising records (one task per input
  file: a big corpus should come as many files); the quality gate; exact keys and MinHash
  signatures; exact dedup (``groupby`` of the keys); near-dedup candidates (``groupby`` of
  the LSH bands) and their resolution by the local ``NearDeduplicator``, one group of
  whole connected components per task (:mod:`qudata.engines.ray_dedup`); then, in a pool
  of actors each holding a token counter, token counts of every text and message,
  heuristic quality scores (``missing_score: score``) and cluster keys. With dedup the
  inputs are read twice: once for the keys, once for the documents.
- **On the driver**, in input order (Ray Data streams the documents in order, which is
  checked): repeat suffixes of derived ids (``-2``, ``-3``), the quality threshold (a
  comparison), the replay of the duplicate verdicts, the union-find over near candidates,
  then formatting, validation, splits, shuffle, sharding and writing by the local
  engine's own code (:class:`qudata.pipeline._Run`), which looks token counts up instead
  of counting them. This part is serial: it bounds the speed-up.

Memory per million documents:

- object store (spilled to disk when full): exact keys stream through one shuffle (24
  bytes a document); near keeps keys and pickled signatures (about 740 bytes a document)
  and LSH band rows (16 bytes x bands, 256 bytes at the defaults).
- driver, and broadcast to every worker: 32 bytes per repeated text (exact); 16 bytes per
  repeated LSH band and per document with a near candidate, 40 bytes per duplicate
  (near).
- driver only: the union-find, about 120 bytes per document with a near candidate; the
  id of each kept document until its last duplicate and each derived id's repeat count
  (as locally), about 100 bytes each; otherwise the local engine's bounded batches,
  writers and shuffle buckets. Measured on 200,000 documents (135 MB, near, 2 CPUs):
  driver 261 MB private memory of which 190 MB is Ray itself, local engine 501 MB.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from qudata.config import Config, EngineConfig, parse_size
from qudata.errors import ConfigError, MissingExtraError, WorkerError
from qudata.io.readers import RawRecord
from qudata.io.sources import Source, walk_arguments
from qudata.io.writers import AtomicFile
from qudata.models import Document, token_texts
from qudata.pipeline import BATCH_SIZE, _Run
from qudata.quality.dedup import Deduplicator, DedupVerdict
from qudata.quality.report import RunReport

from .ray_dedup import Verdicts, duplicate_verdicts
from .ray_inputs import expand_sources, input_bytes
from .ray_stages import (
    DOC,
    ERROR,
    INVALID,
    LINE_BITS,
    Prepare,
    decode_error,
    read_documents,
    read_texts,
    sign_texts,
)

__all__ = ["pack_with_ray", "ray_session"]

LOCAL_CPUS = 2
LOCAL_OBJECT_STORE = 200 * 1024**2
BLOCK_BYTES = 8 * 1024**2
RAY_PROGRESS_LOGGER = "ray.data._internal.progress"


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingExtraError("ray", "ray", feature="--engine ray") from None
    return ray


def pack_with_ray(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    output_dir: Path,
    cfg: Config,
    *,
    on_progress: Callable[[int], None] | None = None,
    command: str | None = None,
) -> RunReport:
    """:func:`qudata.pack_dataset` on Ray (``engine.name: ray``): same files, same account.

    Joins the running Ray instance if there is one, else ``engine.address``, else starts
    a local one (``engine.num_cpus``, default 2; ``engine.object_store_memory``, default
    200 MB) and stops it at the end. Inputs are local paths (which every node must see at
    the same path) or fsspec URIs (``s3://``, ``gs://``, ``file://``); the output folder
    is local to the driver.
    """
    _import_ray()
    run = _RayRun(cfg, Path(output_dir), on_progress, command)
    arguments = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    found, argument_of = walk_arguments(
        [os.fspath(a) for a in arguments], output_dir, expand_sources
    )
    run.report.skipped.update(found.skipped)
    if cfg.mix is not None:
        run.mix_source.update(argument_of)
    with ray_session(cfg.engine):
        return run.run(found.sources)


@contextmanager
def ray_session(engine: EngineConfig) -> Iterator[None]:
    """Ray Data ready for a run: quiet, streaming in order; a local instance if needed."""
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if not engine.address:
            memory = engine.object_store_memory
            options.update(
                num_cpus=engine.num_cpus or LOCAL_CPUS,
                object_store_memory=parse_size(memory) if memory else LOCAL_OBJECT_STORE,
                include_dashboard=False,
            )
        try:
            ray.init(address=engine.address, **options)
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError, ...
            where = f"at {engine.address}" if engine.address else "locally"
            message = " ".join(str(exc).split())
            raise ConfigError(f"cannot start or join Ray {where}: {message}") from None
        started = True
    with warnings.catch_warnings():  # Ray's own defaults set a deprecated field (2.60)
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ray.data.DataContext.get_current()
    saved = (
        context.execution_options.preserve_order,
        context.enable_progress_bars,
        context.target_max_block_size,
    )
    quiet = getattr(context, "print_on_execution_start", None)
    loggers = {name: logging.getLogger(name) for name in ("ray.data", RAY_PROGRESS_LOGGER)}
    levels = {name: logger.level for name, logger in loggers.items()}
    # Ray Data's execution notes, and "Progress bars disabled" (a warning): the local
    # engine's progress line stands in for both
    loggers["ray.data"].setLevel(logging.WARNING)
    loggers[RAY_PROGRESS_LOGGER].setLevel(logging.ERROR)
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.target_max_block_size = BLOCK_BYTES  # documents reach the driver sooner
    if quiet is not None:
        context.print_on_execution_start = False
    try:
        yield
    finally:
        (
            context.execution_options.preserve_order,
            context.enable_progress_bars,
            context.target_max_block_size,
        ) = saved
        if quiet is not None:
            context.print_on_execution_start = quiet
        for name, logger in loggers.items():
            logger.setLevel(levels[name])
        if started:
            ray.shutdown()


class _TokenCache:
    """Token counts made by the workers, for the last ``BATCH_SIZE`` documents streamed
    (a pipeline batch never holds more, so every text of a batch is found)."""

    def __init__(self, keep: int = BATCH_SIZE) -> None:
        self.counts: dict[str, list[int]] = {}  # text -> [count, documents holding it]
        self.docs: deque[list[str]] = deque()
        self.keep = keep

    def add(self, texts: list[str], counts: Sequence[int]) -> None:
        for text, n in zip(texts, counts, strict=True):
            entry = self.counts.setdefault(text, [n, 0])
            entry[1] += 1
        self.docs.append(texts)
        while len(self.docs) > self.keep:
            for text in self.docs.popleft():
                entry = self.counts[text]
                entry[1] -= 1
                if entry[1] == 0:
                    del self.counts[text]

    def get(self, text: str) -> int | None:
        entry = self.counts.get(text)
        return None if entry is None else entry[0]


class _PrecountedCounter:
    """The run's token counter, answering from the workers' counts where it can."""

    def __init__(self, counter: Any, cache: _TokenCache) -> None:
        self.counter = counter
        self.cache = cache
        self.name: str = counter.name
        self.exact: bool = counter.exact

    def count(self, text: str) -> int:
        n = self.cache.get(text)
        return int(self.counter.count(text)) if n is None else n

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        counts = [self.cache.get(t) for t in texts]
        missing = [i for i, n in enumerate(counts) if n is None]
        if missing:
            recount = self.counter.count_batch([texts[i] for i in missing])
            for i, n in zip(missing, recount, strict=True):
                counts[i] = n
        return counts  # type: ignore[return-value]

    def token_ends(self, text: str, tokens: Any = None) -> list[int]:
        return self.counter.token_ends(text, tokens)  # type: ignore[no-any-return]


class _Replay:
    """The duplicate verdicts computed on Ray, handed out as the local deduplicator's.

    ``pending`` holds ``(position, exact key)`` of the documents streamed that passed the
    quality gate, in order; ``check_batch`` (called with exactly those, in order) takes
    one per document. The id of a kept document is held until its last duplicate.
    """

    def __init__(self, verdicts: Verdicts, pending: deque[tuple[int, bytes]]) -> None:
        self.verdicts = verdicts
        self.pending = pending
        self.kept: dict[int, list[Any]] = {}  # position -> [id, duplicates still to come]

    def check(self, doc_id: str, text: str) -> DedupVerdict:
        return self.check_batch([(doc_id, text)])[0]

    def check_batch(self, items: Sequence[tuple[str, str]]) -> list[DedupVerdict]:
        entries = [self.pending.popleft() for _ in items]
        pos = np.array([p for p, _ in entries], np.int64)
        keys = np.frombuffer(b"".join(k for _, k in entries), "<i8").reshape(-1, 2)
        of, near, c_hi, c_lo, refs, sim = self.verdicts.lookup(pos, keys[:, 0], keys[:, 1])
        out = []
        for i, (doc_id, _) in enumerate(items):
            if of[i] < 0:
                if refs[i] > 0:
                    self.kept[int(pos[i])] = [doc_id, int(refs[i])]
                out.append(DedupVerdict(None, None, entries[i][1].hex()))
                continue
            kept = self.kept[int(of[i])]
            kept[1] -= 1
            if kept[1] == 0:
                del self.kept[int(of[i])]
            reason = "duplicate_near" if near[i] else "duplicate_exact"
            cluster = struct.pack("<qq", int(c_hi[i]), int(c_lo[i])).hex()
            similarity = float(sim[i]) if near[i] and sim[i] >= 0 else None
            out.append(DedupVerdict(kept[0], reason, cluster, similarity))
        return out

    def close(self) -> None:
        self.kept.clear()


class _RayRun(_Run):
    """The local run, fed by Ray: its documents, token counts and duplicate verdicts."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.cache = _TokenCache()
        self.pending: deque[tuple[int, bytes]] = deque()
        self.derived: dict[str, int] = {}
        self.verdicts = Verdicts()
        self.seed = 1

    def _token_counter(self) -> Any:
        counter = super()._token_counter()
        return None if counter is None else _PrecountedCounter(counter, self.cache)

    def _deduplicator(self) -> Deduplicator | None:
        if self.cfg.dedup.method == "none":
            return None
        return _Replay(self.verdicts, self.pending)

    def _pack(self, sources: list[Source], staging: Path) -> None:
        local = super()._deduplicator()  # the configuration's checks, and rensa's presence
        if local is not None:
            self.seed = getattr(local, "seed", 1)
            local.close()
            self.verdicts = duplicate_verdicts(
                self._keyed(sources), self.cfg.dedup, self._partitions()
            )
        super()._pack(sources, staging)

    def _schema_records(self, source: Source) -> Iterator[RawRecord]:
        """A URI input is read from a local copy, as the Ray stages read it."""
        from qudata.engines.ray_stages import local_copy

        with local_copy(source) as local:
            yield from super()._schema_records(local)

    def _shuffle_buckets(self, sources: list[Source]) -> int:
        """As the local engine: about 32 MB of input per bucket, between 16 and 1024."""
        return max(16, min(1024, input_bytes(sources) // (32 << 20) + 1))

    def _partitions(self) -> int:
        ray = _import_ray()
        return max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))

    def _files(self, sources: list[Source]) -> Any:
        ray = _import_ray()
        rows = [{"f": i} for i in range(len(sources))]
        return ray.data.from_items(rows, override_num_blocks=len(sources))

    def _keyed(self, sources: list[Source]) -> Any:
        """Position, exact key (and signature) of every readable document."""
        cfg = self.cfg
        near = (
            (cfg.dedup.num_perm, cfg.dedup.ngram, self.seed) if cfg.dedup.method == "near" else None
        )
        texts = self._files(sources).map_batches(
            read_texts,
            batch_size=1,
            batch_format="numpy",
            fn_kwargs={
                "sources": sources,
                "input_cfg": cfg.input,
                "roles": list(cfg.dedup.roles),
                "quality": cfg.quality,
                "config": cfg,
            },
        )
        return texts.map_batches(sign_texts, batch_format="pyarrow", fn_kwargs={"near": near})

    def _stream(self, sources: list[Source]) -> Iterator[Any]:
        """The prepared documents, in input order."""
        ray = _import_ray()
        cfg = self.cfg
        dedup = cfg.dedup.method != "none"
        docs = self._files(sources).map_batches(
            read_documents,
            batch_size=1,
            batch_format="numpy",
            fn_kwargs={
                "sources": sources,
                "input_cfg": cfg.input,
            },
        )
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        docs = docs.map_batches(
            Prepare,
            batch_format="pyarrow",
            batch_size=256,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=cpus),
            fn_constructor_kwargs={
                "tokenizer": cfg.quality.tokenizer,
                "quality": cfg.quality,
                "roles": list(cfg.dedup.roles) if dedup else None,
                "cluster": not dedup and len(cfg.output.split) > 1,
                "config": cfg,
            },
        )
        yield from docs.iter_batches(batch_format="pyarrow", batch_size=None)

    def _documents(self, sources: list[Source], rejects: AtomicFile) -> Iterator[Document]:
        """The local engine's document stream, from Ray: the same documents, counts,
        rejects and input records, in input order."""
        on_error = self.cfg.input.on_error
        id_key = self.cfg.input.id_field
        dedup = self.cfg.dedup.method != "none"
        current, before, last = -1, 0, -1
        for table in self._stream(sources):
            columns = [table[c].to_pylist() for c in ("pos", "kind", "payload")]
            for pos, kind, payload in zip(*columns, strict=True):
                if pos <= last:  # the verdicts and the output depend on input order
                    raise WorkerError(
                        f"Ray Data streamed position {pos} after {last}: the input order "
                        "was lost (a Ray Data setting?); nothing was published"
                    )
                last = pos
                f = pos >> LINE_BITS
                if f != current:
                    current, before = f, self.report.read
                if kind == DOC:
                    doc, derived, key, counts, passed = pickle.loads(payload)
                    self.report.read += 1
                    if derived:
                        doc.id = self._suffixed(doc.id)
                    if counts is not None:
                        self.cache.add(token_texts(doc), counts)
                    if dedup and passed:  # as the local run, dedup sees what passed the gate
                        self.pending.append((pos, key))
                    yield doc
                elif kind == INVALID:
                    self.report.read += 1
                    origin, line, row_id, detail, reason = pickle.loads(payload)
                    row = None if row_id is None else {id_key: row_id}
                    raw = RawRecord(origin, line, row, detail, reason)
                    self._normalize(raw, on_error, rejects)
                elif kind == ERROR:
                    self._unreadable(decode_error(payload), rejects)
                else:
                    self.report.inputs.append(
                        {
                            "path": sources[f].name,
                            "sha256": payload.decode() or None,
                            "records": self.report.read - before,
                        }
                    )

    def _suffixed(self, base: str) -> str:
        """``-2``, ``-3``, ... on repeats of a derived id, in input order (as the local
        ``DocumentNormalizer``)."""
        seen = self.derived.get(base, 0) + 1
        self.derived[base] = seen
        return base if seen == 1 else f"{base}-{seen}"
