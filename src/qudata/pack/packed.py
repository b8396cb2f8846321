"""``-f packed``: packed SFT and pretraining sequences as Parquet, with checked masks.

Per document (:meth:`PackedFormatter.format_document`): a conversation is cleaned of
chat markup (``pack.chatml.markup``), rendered with ``pack.packed.template`` (``chatml``
or a chat template), its assistant turns found by prefix rendering and tokenized
segment by segment (:mod:`qudata.pack.masks`); the result is checked and becomes one
record ``{"doc", "ids", "spans"}`` (``spans``: token ranges in the loss). A plain
document becomes ``{"doc", "ids"}``: its tokens and the end-of-document token, packed
as pretraining data (masks all ones). Records are plain JSON values: they may be
serialised between the steps of a run.

Drops: ``too_long`` (over ``seq_len``, with ``on_overflow: drop``, or a single turn
too long to split), ``mask_empty``, ``mask_full``, ``mask_unaligned`` (a generation
prompt that is not a prefix of the rendering), ``decode_mismatch`` and
``mask_mismatch`` (the checks), ``markup``, ``template_error``, ``empty_text``.

A template that renders earlier assistant turns differently from the last (Qwen3's
``<think>`` stripping) is counted in ``events["reasoning_template"]`` and handled by
``pack.packed.reasoning``: ``last_turn`` masks only the turns rendered as they would be
last (the others are context), ``per_turn`` writes one sequence per assistant turn (the
conversation up to it, only that turn masked), ``keep`` masks every turn as the
template renders it in the whole conversation. An assistant message of ``weight`` 0
(OpenAI's fine-tuning format) is context.

Packing over the whole split happens in the writer (:mod:`qudata.pack.packed_writer`).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, Literal

from pydantic import Field

from qudata.account import Drop
from qudata.errors import ConfigError, InputError
from qudata.io.parquet import import_pyarrow
from qudata.models import Document
from qudata.pack.base import Formatter, Record
from qudata.pack.chatml import chatml_options
from qudata.pack.chatml_render import render_chatml
from qudata.pack.markup import MessageCleaner, conversation_guard
from qudata.pack.masks import Rendering, Vocabulary, check, find_turns, tokenize_segments
from qudata.pack.megatron import EOD_CANDIDATES
from qudata.pack.packed_writer import PackedWriter
from qudata.pack.templates import compile_chat_template, load_template_source, render_bounded
from qudata.sections import Section

__all__ = ["PackedFormatter", "PackedOptions"]


class PackedOptions(Section):
    """``pack.packed``: packed training sequences (token ids, positions, assistant masks)."""

    seq_len: int = Field(default=4096, gt=1, description="most tokens of one packed row")
    template: str = Field(
        default="chatml",
        description="`chatml` (qudata's ChatML rendering), or a chat template (path or string)",
    )
    template_vars: dict[str, str] = Field(
        default_factory=dict, description="variables of that template (`bos_token`, ...)"
    )
    mask: Literal["assistant", "all"] = Field(
        default="assistant", description="tokens in the loss: `assistant` spans, or `all`"
    )
    strategy: Literal["bfd", "sequential"] = Field(
        default="bfd",
        description="`bfd` (best-fit decreasing over the split) or `sequential` (input order)",
    )
    on_overflow: Literal["drop", "split_turns"] = Field(
        default="drop",
        description="a conversation over `seq_len`: `drop` (`too_long`) or `split_turns` "
        "(cut between turns)",
    )
    reasoning: Literal["last_turn", "per_turn", "keep"] = Field(
        default="last_turn",
        description="a template that renders earlier assistant turns differently from the "
        "last one: `last_turn`, `per_turn`, `keep`",
    )
    eod_token: str | None = Field(
        default=None,
        description="end-of-document token after each plain document (none: the tokenizer's)",
    )


class PackedFormatter(Formatter[PackedOptions]):
    """Packed training rows: ``input_ids``, ``position_ids``, ``seq_lengths``,
    ``assistant_masks``, ``doc_ids``.

    Example::

        pack_dataset(["chats.jsonl"], "out", formats=["packed"],
                     config={"pack": {"packed": {"seq_len": 2048}}})
        # out/packed/train-00000-of-00001.parquet
    """

    name: ClassVar[str] = "packed"
    extension: ClassVar[str] = ".parquet"
    options_model: ClassVar[type[PackedOptions]] = PackedOptions

    def __init__(self, config: Any = None, **options: Any) -> None:
        import_pyarrow()  # a missing extra is one line before anything is written
        super().__init__(config, **options)

    def _setup(self, state: dict[str, Any], opts: PackedOptions) -> dict[str, Any]:
        """The stream's tokenizer, renderer, markup cleaner and special tokens, once."""
        if "vocab" in state:
            return state
        vocab = Vocabulary(self.counter)
        chatml = chatml_options(self.config)
        template = None if opts.template == "chatml" else opts.template
        guard = conversation_guard(
            SimpleNamespace(
                chat_template=template,
                template_vars=opts.template_vars,
                template_timeout=chatml.template_timeout,
                template_max_chars=chatml.template_max_chars,
                markup=chatml.markup,
            )
        )
        specials = {m: i for m in guard.markers if (i := vocab.token_id(m)) is not None}
        names = [opts.eod_token] if opts.eod_token else list(EOD_CANDIDATES)
        eod = next((i for n in names if (i := vocab.token_id(n)) is not None), None)
        state.update(
            vocab=vocab,
            cleaner=MessageCleaner(guard),
            markers=guard.markers,
            specials=specials,
            eod=eod,
            compiled=None
            if template is None
            else compile_chat_template(load_template_source(template)),
        )
        return state

    def _render(self, state: dict[str, Any], opts: PackedOptions, tools: Any) -> Any:
        compiled = state["compiled"]
        chatml = chatml_options(self.config)

        def render(messages: list[dict[str, Any]], generation: bool) -> str:
            if compiled is None:
                text = render_chatml(messages, tools)
                return text + "<|im_start|>assistant\n" if generation else text
            variables = {
                **opts.template_vars,
                "messages": messages,
                "tools": tools,
                "documents": None,
                "add_generation_prompt": generation,
            }
            return render_bounded(
                compiled,
                variables,
                timeout=chatml.template_timeout,
                max_chars=chatml.template_max_chars,
            )

        return render

    def format_document(
        self, doc: Document, opts: PackedOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        st = self._setup(state, opts)
        if doc.messages is None:
            if not doc.text.strip():
                return Drop("empty_text", "the document text is empty")
            if st["eod"] is None:
                raise ConfigError(
                    "pack.packed.eod_token: the tokenizer has no end-of-document token "
                    f"({', '.join(EOD_CANDIDATES)}); name one"
                )
            return [{"doc": doc.id, "ids": [*st["vocab"].encode_batch([doc.text])[0], st["eod"]]}]
        cleaned = st["cleaner"].clean_counted(
            [*doc.messages, {"tools": doc.tools}], self.stats.events
        )
        if cleaned is None:
            return Drop("markup", "a message holds chat markup (markup: drop)")
        messages, tools = cleaned[:-1], cleaned[-1]["tools"] or None
        try:
            render = self._render(st, opts, tools)
            records = self._conversation(doc.id, messages, render, opts, st)
            overflow = isinstance(records, Drop) and records.reason == "too_long"
            if overflow and opts.on_overflow == "split_turns":
                return self._split_turns(doc.id, messages, render, opts, st)
            return records
        except InputError as exc:
            if exc.reason != "template_error":
                raise
            return Drop("template_error", f"the chat template failed: {exc.detail}")

    def _conversation(
        self,
        doc_id: str,
        messages: list[dict[str, Any]],
        render: Any,
        opts: PackedOptions,
        st: dict[str, Any],
    ) -> list[Record] | Drop:
        """The records of one conversation, checked; ``too_long`` over ``seq_len``."""
        rendering = find_turns(render, messages, st["markers"])
        if isinstance(rendering, Drop):
            return rendering
        # OpenAI's fine-tuning weight: an assistant message of weight 0 is context
        skip = {i for i, m in enumerate(messages) if m.get("weight") == 0}
        rendering = Rendering(rendering.text, [t for t in rendering.turns if t.message not in skip])
        pieces = self._pieces(rendering, opts)
        if isinstance(pieces, Drop):
            return pieces
        records: list[Record] = []
        for text, char_spans in pieces:
            if opts.mask == "all":
                char_spans = [(0, len(text))]
            cuts = sorted({c for span in char_spans for c in span} - {0, len(text)})
            ids, marks = tokenize_segments(text, cuts, st["vocab"], st["markers"], st["specials"])
            at = dict(zip(cuts, marks, strict=True)) | {0: 0, len(text): len(ids)}
            spans = [(at[start], at[end]) for start, end in char_spans]
            problem = check(ids, spans, text, char_spans, st["vocab"], whole=opts.mask == "all")
            if problem is not None:
                return problem
            if len(ids) > opts.seq_len:
                return Drop("too_long", f"a conversation of {len(ids)} tokens > {opts.seq_len}")
            records.append({"doc": doc_id, "ids": ids, "spans": [list(s) for s in spans]})
        return records

    def _pieces(
        self, rendering: Rendering, opts: PackedOptions
    ) -> list[tuple[str, list[tuple[int, int]]]] | Drop:
        """The texts to tokenize and their assistant spans, by the ``reasoning`` policy."""
        turns = rendering.turns
        unstable = [t for t in turns if not t.stable]
        if not unstable:
            return [(rendering.text, [(t.start, t.start + len(t.span)) for t in turns])]
        self.stats.events["reasoning_template"] += 1
        if opts.reasoning == "last_turn":
            self.stats.events["reasoning_turns_unmasked"] += len(unstable)
            stable = [(t.start, t.start + len(t.span)) for t in turns if t.stable]
            return [(rendering.text, stable)]
        if opts.reasoning == "per_turn":
            return [(t.alone, [(t.start, t.start + len(t.span))]) for t in turns]
        if any(t.end is None for t in unstable):
            return Drop("mask_unaligned", "an earlier assistant turn's end marker is not found")
        return [(rendering.text, [(t.start, t.end) for t in turns if t.end is not None])]

    def _split_turns(
        self,
        doc_id: str,
        messages: list[dict[str, Any]],
        render: Any,
        opts: PackedOptions,
        st: dict[str, Any],
    ) -> list[Record] | Drop:
        """Cut a too long conversation between exchanges (a user turn and what follows
        it); every piece starts with the system turns. Pieces are as long as fit."""
        head = 0
        while head < len(messages) and messages[head].get("role") == "system":
            head += 1
        context, exchanges = messages[:head], _exchanges(messages[head:])
        records: list[Record] = []
        current: list[dict[str, Any]] = []
        done: list[Record] | None = None
        for exchange in exchanges:
            trial = self._conversation(doc_id, [*context, *current, *exchange], render, opts, st)
            if not isinstance(trial, Drop):
                current, done = [*current, *exchange], trial
                continue
            if trial.reason != "too_long":
                return trial
            if done is None:
                return Drop("too_long", "one turn with its context is longer than seq_len")
            records.extend(done)
            alone = self._conversation(doc_id, [*context, *exchange], render, opts, st)
            if isinstance(alone, Drop):
                if alone.reason == "too_long":
                    return Drop("too_long", "one turn with its context is longer than seq_len")
                return alone
            current, done = list(exchange), alone
        if done is not None:
            records.extend(done)
        self.stats.events["split_turns"] += 1
        return records

    def token_texts(self, record: Record, doc: Document) -> list[str]:
        return []  # the tokens are the record's own ids

    def record_tokens(self, record: Record) -> int | None:
        return len(record["ids"])

    def writer(self, directory: Path, split: str, **options: Any) -> Any:
        opts = self.options
        return PackedWriter(
            directory, split, seq_len=opts.seq_len, strategy=opts.strategy, **options
        )


def _exchanges(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``messages`` cut before each user turn."""
    out: list[list[dict[str, Any]]] = []
    for message in messages:
        if message.get("role") == "user" or not out:
            out.append([])
        out[-1].append(message)
    return out
