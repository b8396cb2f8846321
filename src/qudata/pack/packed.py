"""``-f packed``: packed SFT and pretraining sequences as Parquet, with checked masks.

Per document (:meth:`PackedFormatter.format_document`): a conversation is cleaned of
chat markup (``pack.chatml.markup``), rendered with ``pack.packed.template`` (``chatml``
or a chat template, as ``apply_chat_template`` renders it: tool-call arguments as
objects, ``reasoning_content`` passed), its assistant spans taken from the template's
``{% generation %}`` blocks or found by prefix rendering, and its whole text tokenized
at once (:mod:`qudata.pack.masks`); the result is checked and becomes one record
``{"doc", "ids", "spans"}`` (``spans``: token ranges in the loss). The tokens inside
``<think>`` blocks are counted in ``events`` (``reasoning_tokens_trained`` and
``reasoning_tokens_masked``), a dropped conversation's in ``dropped_tokens``. A plain
document becomes ``{"doc", "ids"}``: its tokens and the end-of-document token, packed
as pretraining data (masks all ones); map 2's parts hold records as int32 entries.
Drops: ``too_long`` (over ``seq_len`` with ``on_overflow: drop``, or a turn too long to
split), ``mask_empty``, ``mask_full``, ``mask_unaligned`` (a generation prompt not a prefix
of the rendering), ``decode_mismatch``, ``mask_mismatch``, ``markup``, ``template_error``,
``empty_text``.

A template that renders earlier assistant turns differently from the last (Qwen3's
``<think>`` stripping) is counted in ``events["reasoning_template"]`` and handled by
``pack.packed.reasoning``: ``last_turn`` masks only the turns rendered as they would be
last (the others are context), ``per_turn`` writes one sequence per assistant turn (the
conversation up to it, only that turn masked), ``keep`` masks every turn as the
template renders it in the whole conversation. An assistant message of ``weight`` 0
(OpenAI's fine-tuning format) is context. The writer packs the whole split.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, Literal

from pydantic import Field

from qudata.account import Drop
from qudata.errors import InputError
from qudata.io.parquet import import_pyarrow
from qudata.models import Document
from qudata.pack.base import Formatter, Record
from qudata.pack.chatml import chatml_options
from qudata.pack.chatml_render import render_chatml
from qudata.pack.eod import end_of_document, tokenizer_tokens
from qudata.pack.hf_template import load_chat_template, template_messages
from qudata.pack.markup import MessageCleaner, conversation_guard, reasoning_tags
from qudata.pack.masks import (
    Rendering,
    Vocabulary,
    check,
    find_turns,
    reasoning_counts,
    token_spans,
)
from qudata.pack.packed_entries import SequenceEncoder
from qudata.pack.packed_writer import PackedWriter
from qudata.pack.templates import (
    compile_chat_template,
    marks_generation,
    render_bounded,
    render_tracked,
)
from qudata.sections import Section

__all__ = ["PackedFormatter", "PackedOptions"]


class PackedOptions(Section):
    """``pack.packed``: packed training sequences (token ids, positions, assistant masks)."""

    seq_len: int = Field(default=4096, gt=1, description="most tokens of one packed row")
    template: str = Field(
        default="chatml",
        description="`chatml` (qudata's ChatML rendering), or a chat template (path, string "
        "or `tokenizer_config.json`)",
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
        description="end-of-document token after each plain document (none: the tokenizer's "
        "own EOS)",
    )
    layout: Literal["trl", "megatron_bridge"] = Field(
        default="trl",
        description="the rows: `trl` (TRL's columns) or `megatron_bridge` (Megatron-Bridge's "
        "packed Parquet and its metadata JSON)",
    )


class PackedFormatter(Formatter[PackedOptions]):
    """Packed training rows: ``input_ids``, ``position_ids``, ``seq_lengths``,
    ``assistant_masks``, ``doc_ids``. Example::

        pack_dataset(["chats.jsonl"], "out", formats=["packed"],
                     config={"pack": {"packed": {"seq_len": 2048}}})
        # out/packed/train-00000-of-00001.parquet
    """

    name: ClassVar[str] = "packed"
    extension: ClassVar[str] = ".parquet"
    options_model: ClassVar[type[PackedOptions]] = PackedOptions
    writes_encoded: ClassVar[bool] = True  # parts hold int32 ids, not JSON lists

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
        loaded = None if template is None else load_chat_template(template)
        tokens = {} if loaded is None else loaded.tokens
        tags = () if template is None else reasoning_tags(template)
        state.update(
            vocab=vocab,
            cleaner=MessageCleaner(guard),
            markers=guard.markers,
            encode=vocab.encoder([*guard.markers, *tags]),
            count=vocab.counter([*guard.markers, *tags]),
            loaded=loaded,
            variables={**tokenizer_tokens(vocab.base), **tokens, **opts.template_vars},
        )
        return state

    def _render(self, state: dict[str, Any], opts: PackedOptions, tools: Any) -> Any:
        """``render(messages, generation, spans=None)``: the text of a conversation; with
        a list ``spans``, the ``{% generation %}`` blocks are added to it."""
        loaded = state["loaded"]
        chatml = chatml_options(self.config)

        def render(
            messages: list[dict[str, Any]],
            generation: bool,
            spans: list[tuple[int, int]] | None = None,
        ) -> str:
            if loaded is None:
                text = render_chatml(messages, tools)
                return text + "<|im_start|>assistant\n" if generation else text
            variables = {
                **state["variables"],
                "messages": template_messages(messages),
                "tools": tools,
                "documents": None,
                "add_generation_prompt": generation,
            }
            compiled = compile_chat_template(loaded.for_tools(bool(tools)))
            timeout, size = chatml.template_timeout, chatml.template_max_chars
            if spans is None:
                return render_bounded(compiled, variables, timeout=timeout, max_chars=size)
            text, found = render_tracked(compiled, variables, timeout=timeout, max_chars=size)
            spans.extend(found)
            return text

        return render

    def _tracks(self, st: dict[str, Any], tools: Any) -> bool:
        return st["loaded"] is not None and marks_generation(st["loaded"].for_tools(bool(tools)))

    def format_document(
        self, doc: Document, opts: PackedOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        st = self._setup(state, opts)
        if doc.messages is None:
            if not doc.text.strip():
                return Drop("empty_text", "the document text is empty")
            if "eod" not in st:
                eos = None if st["loaded"] is None else st["loaded"].tokens.get("eos_token")
                st["eod"] = end_of_document(
                    st["vocab"], opts.eod_token, eos, option="pack.packed.eod_token"
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
            st["tracked"] = self._tracks(st, tools)
            records = self._conversation(doc.id, messages, render, opts, st)
            overflow = isinstance(records, Drop) and records.reason == "too_long"
            if overflow and opts.on_overflow == "split_turns":
                records = self._split_turns(doc.id, messages, render, opts, st)
            if isinstance(records, Drop):
                # the tokens lost with it: its whole rendering's (checks and limits alike)
                size = st["count"](render(messages, False))
                self.stats.dropped_tokens[records.reason] += size
                return records
            for record in records:
                trained, masked = record.pop("reasoning", (0, 0))
                if trained or masked:
                    self.stats.events["reasoning_tokens_trained"] += trained
                    self.stats.events["reasoning_tokens_masked"] += masked
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
        # OpenAI's fine-tuning weight: an assistant message of weight 0 is context
        skip = {i for i, m in enumerate(messages) if m.get("weight") == 0}
        if opts.reasoning != "per_turn" and not st["tracked"]:
            # too long as a whole: known after one rendering, before the turns are found
            # (one rendering per assistant turn: quadratic in a long conversation)
            text = render(messages, False)
            size = st["count"](text)
            if size > opts.seq_len:
                return Drop("too_long", f"a conversation of {size} tokens > {opts.seq_len}")
        if st["tracked"]:
            pieces = self._generation_pieces(messages, render, skip)
        else:
            rendering = find_turns(render, messages, st["markers"])
            if isinstance(rendering, Drop):
                return rendering
            kept = [t for t in rendering.turns if t.message not in skip]
            pieces = self._pieces(Rendering(rendering.text, kept), opts)
        if isinstance(pieces, Drop):
            return pieces
        records: list[Record] = []
        for text, char_spans in pieces:
            if opts.mask == "all":
                char_spans = [(0, len(text))]
            encoded = st["encode"](text)
            if len(encoded.ids) > opts.seq_len:
                return Drop(
                    "too_long", f"a conversation of {len(encoded.ids)} tokens > {opts.seq_len}"
                )
            spans = token_spans(encoded, char_spans)
            if isinstance(spans, Drop):
                return spans
            problem = check(encoded, spans, text, char_spans, st["vocab"], whole=opts.mask == "all")
            if problem is not None:
                return problem
            records.append(
                {
                    "doc": doc_id,
                    "ids": encoded.ids,
                    "spans": [list(s) for s in spans],
                    "reasoning": reasoning_counts(text, encoded, spans),
                }
            )
        return records

    @staticmethod
    def _generation_pieces(
        messages: list[dict[str, Any]], render: Any, skip: set[int]
    ) -> list[tuple[str, list[tuple[int, int]]]] | Drop:
        """The text and the ``{% generation %}`` spans of a template that marks them (the
        k-th span is the k-th assistant message's, when they are as many)."""
        spans: list[tuple[int, int]] = []
        text = render(messages, False, spans)
        assistants = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
        if len(assistants) == len(spans):
            spans = [s for s, i in zip(spans, assistants, strict=True) if i not in skip]
        return [(text, [(a, b) for a, b in spans if b > a])]

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
        too_long = Drop("too_long", "one turn with its context is longer than seq_len")

        def fits(part: list[dict[str, Any]]) -> bool:  # one rendering, one tokenization
            return int(st["count"](render(part, False))) <= opts.seq_len

        # a piece grows while its text fits; its turns are found (one rendering per
        # assistant turn) only once it is complete: linear in the conversation's length
        records: list[Record] = []
        current: list[dict[str, Any]] = []
        for exchange in exchanges:
            if fits([*context, *current, *exchange]):
                current.extend(exchange)
                continue
            if not current or not fits([*context, *exchange]):
                return too_long
            done = self._conversation(doc_id, [*context, *current], render, opts, st)
            if isinstance(done, Drop):
                return done
            records.extend(done)
            current = list(exchange)
        if current:
            done = self._conversation(doc_id, [*context, *current], render, opts, st)
            if isinstance(done, Drop):
                return too_long if done.reason == "too_long" else done
            records.extend(done)
        self.stats.events["split_turns"] += 1
        return records

    def token_texts(self, record: Record, doc: Document) -> list[str]:
        return []  # the tokens are the record's own ids

    def record_tokens(self, record: Record) -> int | None:
        return len(record["ids"])

    def encoder(self, opts: PackedOptions) -> SequenceEncoder:
        return SequenceEncoder()

    def writer(self, directory: Path, split: str, **options: Any) -> Any:
        opts = self.options
        return PackedWriter(
            directory,
            split,
            seq_len=opts.seq_len,
            strategy=opts.strategy,
            layout=opts.layout,
            identity=self._identity(opts),
            **options,
        )

    def _identity(self, opts: PackedOptions) -> dict[str, Any]:
        """For each file's ``packing``: the template, its source's sha256, its special ids."""
        st = self._setup({}, opts)
        tags = () if st["loaded"] is None else reasoning_tags(opts.template)
        ids = {m: i for m in [*st["markers"], *tags] if (i := st["vocab"].token_id(m)) is not None}
        source = "chatml" if st["loaded"] is None else st["loaded"].source
        name = "inline" if "{" in opts.template else opts.template
        sha = hashlib.sha256(source.encode()).hexdigest()
        return {"template": name, "template_sha256": sha, "special_ids": dict(sorted(ids.items()))}


def _exchanges(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``messages`` cut before each user turn."""
    out: list[list[dict[str, Any]]] = []
    for message in messages:
        if message.get("role") == "user" or not out:
            out.append([])
        out[-1].append(message)
    return out
