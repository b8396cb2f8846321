"""The formatter base class: options, the streaming loop, files; a format fills the hooks.

A concrete formatter sets ``name``, ``extension`` and ``options_model`` and
implements :meth:`Formatter.format_document` (one document to records, or a
:class:`~qudata.account.Drop`); it may override the other hooks: the encoder
(records to bytes), the writer, its own checks, its record rules (:meth:`validate`,
and :attr:`file_rules` for ``qudata validate``), token counts and ``datasets``
features. Everything else — option precedence, streaming, statistics, atomic
files — lives here once. See :mod:`qudata.pack.registry` for adding a format.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from qudata.account import Drop, FormatStats
from qudata.config import Config, load_config, merge_options
from qudata.io.writers import AtomicFile
from qudata.models import Document
from qudata.normalize.document import DocumentNormalizer
from qudata.pack.schema import MetadataSchema
from qudata.quality.checks import Check, first_drop
from qudata.quality.problems import FileRules
from qudata.sections import Section

__all__ = ["Encoder", "Formatter", "Record"]

Record = Any  # a JSON object (dict) for JSON formats, a text block (str) for plain text
Opts = TypeVar("Opts", bound=BaseModel)


class Encoder:
    """Turns the records of one file into bytes: JSON Lines by default."""

    def __init__(self) -> None:
        import orjson

        self._dumps = orjson.dumps

    def encode(self, record: Record) -> bytes:
        return self._dumps(record) + b"\n"

    def finish(self) -> bytes:
        """Bytes that close the file (nothing for JSON Lines)."""
        return b""


class Formatter(ABC, Generic[Opts]):
    """Base of every output format.

    Options come from the defaults, then ``config`` (a YAML path, a whole
    configuration mapping or :class:`~qudata.config.Config`) at construction,
    then a call's ``config=`` dict, then its keyword arguments.
    """

    name: ClassVar[str]
    extension: ClassVar[str]
    options_model: ClassVar[type[Section]]
    #: records carry metadata or messages, whose keys are learnt before writing
    learns_schema: ClassVar[bool] = False
    #: how ``datasets`` finds the format: ``"root"``, a config of the dataset card at
    #: the output's root (JSON Lines); ``"folder"``, a card of its own in its folder
    #: (another builder: ``datasets`` takes one builder per card); ``None``, no card
    card: ClassVar[str | None] = None
    #: its writer takes records as its :meth:`encoder` made them (``write_encoded``), so
    #: map 2's parts hold those bytes and the commit copies them (the default JSON Lines
    #: writer always does; a token-id format says so to skip a JSON round trip)
    writes_encoded: ClassVar[bool] = False
    #: its records are text whose UTF-8 bytes its encoder also takes (plain text: the
    #: numbering and separators depend on the shard), so map 2's parts hold each record's
    #: bytes and the commit hands them to the writer without a JSON round trip
    writes_text_bytes: ClassVar[bool] = False
    #: it writes KTO labels: it takes records labelled undesirable (every other format
    #: drops them as ``undesirable_completion``, see :mod:`qudata.pack.undesirable`)
    reads_kto_labels: ClassVar[bool] = False
    #: the rules ``qudata validate`` checks files of this format by (``None``: it does not)
    file_rules: ClassVar[type[FileRules] | None] = None

    def __init__(
        self,
        config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        self.config = load_config(config)
        section: Any = self.config.pack.options(self.name)
        self.options: Opts = merge_options(
            self.options_model, section, None, options, prefix=f"pack.{self.name}"
        )
        self.stats = FormatStats()
        self._counter: Any = None
        #: the output's metadata schema, learnt before writing (see qudata.pack.schema);
        #: ``None``: learnt while writing
        self.schema: MetadataSchema | None = None

    @property
    def counter(self) -> Any:
        """The counter of ``quality.tokenizer`` (``None`` for ``none``), built on first use."""
        if self._counter is None and self.config.quality.tokenizer != "none":
            from qudata.quality.tokens import get_token_counter

            quality = self.config.quality
            self._counter = get_token_counter(quality.tokenizer, quality.token_threads)
        return self._counter

    @counter.setter
    def counter(self, value: Any) -> None:
        self._counter = value

    def resolve(self, config: Mapping[str, Any] | None = None, **options: Any) -> Opts:
        """The options of one call: keyword arguments > ``config`` > the formatter's."""
        return merge_options(  # type: ignore[return-value]
            self.options_model, self.options, config, options, prefix=f"pack.{self.name}"
        )

    @classmethod
    def surveys_metadata(cls, opts: Any) -> bool:
        """Whether the run's first pass must learn the metadata schema for this format
        (its records carry metadata or messages, whose keys vary by document)."""
        return cls.learns_schema

    def checks(self, opts: Opts) -> list[Check]:
        """The format's own checks, run on each document before it is formatted (by the
        runner of the run's checks); none by default."""
        return []

    def format_checks(self, opts: Opts) -> list[Check]:
        """Every check this format runs before formatting: the guard against training on
        an undesirable KTO completion (``input.undesirable: drop``), then :meth:`checks`."""
        from qudata.pack.undesirable import UndesirableCheck

        guard: list[Check] = []
        if not self.reads_kto_labels and self.config.input.undesirable == "drop":
            guard.append(UndesirableCheck())
        return guard + self.checks(opts)

    @abstractmethod
    def format_document(
        self, doc: Document, opts: Opts, state: dict[str, Any]
    ) -> list[Record] | Drop:
        """Records for one document, or the reason it cannot be written in this format.

        ``state`` is a dict private to one output stream (numbering, type memory).
        """

    def token_texts(self, record: Record, doc: Document) -> list[str]:
        """The texts whose tokens count for ``record`` (default: the document text)."""
        return [doc.text]

    def prepare_batch(self, docs: Sequence[Document], opts: Opts, state: dict[str, Any]) -> None:
        """Work worth doing for a whole batch before its documents are formatted one by
        one (ChatML counts the parts of every long text in one batched call)."""

    def record_tokens(self, record: Record) -> int | None:
        """The tokens of ``record`` when the format knows them itself (token-id formats);
        ``None``: the sum of its :meth:`token_texts`' counts."""
        return None

    def token_limit(self, opts: Opts) -> int | None:
        """The most tokens one counted text may have in this format (``None``: no limit)."""
        return None

    def features(self, state: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The ``datasets`` features of this format's records, for the dataset card
        (``None``: not a ``datasets`` JSON format)."""
        return None

    def validate(self, record: Record, state: dict[str, Any]) -> list[str]:
        """Error codes of the rules ``record`` breaks as it is written (the format's rules,
        as :attr:`file_rules` applies them to files; see :mod:`qudata.quality.problems`)."""
        return []

    def encoder(self, opts: Opts) -> Encoder:
        """The encoder for one output file."""
        return Encoder()

    def arrow_schema(self) -> Any:
        """The Arrow schema of its rows when its writer takes Arrow tables (``write_rows``):
        map 2's parts then hold Arrow IPC batches, not JSON (``None``: it does not)."""
        return None

    def writer(self, directory: Path, split: str, **options: Any) -> Any:
        """The writer of one split: sharded files of encoded records (Parquet has its own)."""
        from qudata.io.shards import ShardedWriter

        return ShardedWriter(
            directory,
            split,
            self.extension,
            new_encoder=lambda: self.encoder(self.options),
            **options,
        )

    def iter_records(
        self,
        documents: Iterable[Any],
        *,
        config: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Iterator[Record]:
        """Stream records; documents this format cannot carry are counted in ``self.stats``."""
        opts = self.resolve(config, **options)
        normalize = DocumentNormalizer.from_input(self.config.input)
        state: dict[str, Any] = {}
        self.stats = FormatStats()
        checks = self.format_checks(opts)
        for number, obj in enumerate(documents, 1):
            doc = normalize(obj, origin="<documents>", line=number)
            result = first_drop(checks, doc) or self.format_document(doc, opts, state)
            if isinstance(result, Drop):
                self.stats.dropped[result.reason] += 1
                continue
            self.stats.documents += 1
            self.stats.records += len(result)
            yield from result

    def format_documents(
        self, documents: Iterable[Any], config: Mapping[str, Any] | None = None, **options: Any
    ) -> Any:
        """All records as a list, every record with the same keys (see
        :meth:`iter_records` for the streaming form, which learns keys as they come)."""
        with self._learnt(documents) as docs:
            return list(self.iter_records(docs, config=config, **options))

    @contextmanager
    def _learnt(self, documents: Iterable[Any]) -> Iterator[Iterable[Any]]:
        """``documents`` as a list, with :attr:`schema` learnt from them for the call
        (when this format learns one and none was given)."""
        if not self.learns_schema or self.schema is not None:
            yield documents
            return
        docs = list(documents)
        schema = MetadataSchema()
        normalize = DocumentNormalizer.from_input(self.config.input)  # the call's shape
        for number, obj in enumerate(docs, 1):
            schema.observe(normalize(obj, origin="<documents>", line=number))
        self.schema = schema
        try:
            yield docs
        finally:
            self.schema = None

    def export_to_file(
        self,
        documents: Iterable[Any],
        output_path: str | os.PathLike[str],
        config: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> FormatStats:
        """Write one file atomically: a crash leaves no file at ``output_path``. The
        documents are held in memory to learn the output's keys first (``qudata pack``
        reads its input twice instead)."""
        opts = self.resolve(config, **options)
        encoder = self.encoder(opts)
        with self._learnt(documents) as docs, AtomicFile(Path(output_path)) as out:
            for record in self.iter_records(docs, **opts.model_dump()):
                out.write(encoder.encode(record))
            out.write(encoder.finish())
        self.stats.bytes = out.bytes_written
        return self.stats
