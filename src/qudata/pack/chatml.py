"""ChatML: conversations in the OpenAI ``messages`` shape, checked, within budget, unforgeable.

The format's options are :class:`~qudata.pack.chatml_options.ChatMLOptions` (in their
own module, as JSONL, Parquet and packed sequences follow them too); its turns are
built by :class:`~qudata.pack.chatml_turns.ChatMLTurns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from qudata.account import Drop
from qudata.errors import InputError
from qudata.models import Document
from qudata.normalize.parts import MEDIA_KINDS
from qudata.normalize.problems import conversation_problems
from qudata.normalize.tools import decode_arguments, undeclared_calls
from qudata.pack.base import Record
from qudata.pack.budget import guess_parts
from qudata.pack.chatml_options import (
    CHAT_TEMPLATE_ARGUMENTS,
    DEFAULT_ASSISTANT_TEMPLATE,
    DEFAULT_USER_TEMPLATE,
    ChatMLOptions,
    chatml_options,
)
from qudata.pack.chatml_render import render_chatml
from qudata.pack.chatml_rules import ChatMLRules, validate_chatml
from qudata.pack.chatml_turns import DROP_RECORD, MESSAGE_KEYS, ChatMLTurns, default_user_prompt
from qudata.pack.hf_template import ChatTemplateFile, load_chat_template, template_messages
from qudata.pack.markup import MarkupGuard, conversation_guard
from qudata.pack.metadata import MetadataWriter
from qudata.pack.templates import (
    compile_chat_template,
    compile_template,
    render_bounded,
)
from qudata.pack.tool_arguments import json_arguments
from qudata.quality.problems import FileRules

__all__ = [
    "CHAT_TEMPLATE_ARGUMENTS",
    "DEFAULT_ASSISTANT_TEMPLATE",
    "DEFAULT_USER_TEMPLATE",
    "ChatMLFormatter",
    "ChatMLOptions",
    "chatml_options",
    "default_user_prompt",
]


class ChatMLFormatter(ChatMLTurns):
    """Conversational training records: ``{"messages": [...], "metadata": {...}}``.

    A conversation input (``messages``, ShareGPT, Alpaca, prompt/completion,
    question/answer) stays a conversation, roles normalised. A plain document
    becomes a system turn (only when ``system_message`` is set), a user turn from
    ``user_template`` and an assistant turn from ``assistant_template``; a document
    over ``max_tokens_per_message`` is split into several conversations
    (``on_overflow: split``). Chat markup in content is escaped (``markup``).

    Example::

        formatter = ChatMLFormatter()
        chatml_data = formatter.format_documents(documents, config={
            "system_message": "You are a helpful assistant.",
            "include_metadata": True,
        })
    """

    name: ClassVar[str] = "chatml"
    extension: ClassVar[str] = ".jsonl"
    card: ClassVar[str | None] = "root"
    learns_schema: ClassVar[bool] = True
    options_model: ClassVar[type[ChatMLOptions]] = ChatMLOptions
    file_rules: ClassVar[type[FileRules] | None] = ChatMLRules

    def format_document(
        self, doc: Document, opts: ChatMLOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        if "guard" not in state:
            state.update(self._stream_state(opts))
        if doc.messages is not None:
            extra = {k for m in doc.messages for k in m if k not in MESSAGE_KEYS}
            if extra:  # said, not silent: ChatML messages carry only MESSAGE_KEYS
                self.stats.warnings["message_key_dropped"] += 1
                for key in extra:  # and named: the record's messages had these
                    self.stats.warnings[f"message_key_dropped:{key}"] += 1
            self._count_reasoning(doc.messages)
            conversations = self._conversation(doc, opts, state)
            self.stats.sources[doc.conversation_kind or "messages"] += 1
        else:
            try:
                conversations = self._from_document(doc, opts, state)
            except InputError as exc:
                if exc.reason != "template_error":
                    raise
                return Drop("template_error", str(exc))
            self.stats.sources["document"] += 1
        if isinstance(conversations, Drop):
            return conversations
        tools = None
        if doc.tools:
            tools = self._clean_value(doc.tools, opts, state)
            if tools is DROP_RECORD:
                return Drop("markup", "a tool schema holds chat markup (markup: drop)")
            state["record_keys"].add("tools")
        records = []
        for messages in conversations:
            # a conversation made by the default templates is well formed by construction
            # (non-empty text, fixed roles); everything else is checked
            by_construction = state["by_construction"] and doc.messages is None
            problems = [] if by_construction else conversation_problems(messages)
            if problems:
                return Drop(problems[0], "; ".join(problems))
            for message in messages:
                state["message_keys"].update(message)
            # the output's schema: every message has the same keys (null where absent)
            written = state["metadata"].messages(messages, MESSAGE_KEYS)
            if opts.tool_arguments == "object" and any(m.get("tool_calls") for m in messages):
                written = decode_arguments(written)  # as templates expect them
                messages = decode_arguments(messages)
            record: dict[str, Any] = {"messages": written}
            if tools is not None:
                record["tools"] = tools
            if doc.parallel_tool_calls is not None:
                record["parallel_tool_calls"] = doc.parallel_tool_calls
                state["record_keys"].add("parallel_tool_calls")
            for kind, references in (doc.media or {}).items():  # references, not media
                record[kind] = references
                state["record_keys"].add(kind)
            if opts.include_metadata:
                record["metadata"] = state["metadata"].build(doc)
            if state["chat_template"] is not None:
                try:
                    record["text"] = self._render_chat(
                        state["chat_template"], messages, opts, tools=tools
                    )
                except InputError as exc:  # raise_exception(), a template bug, a limit
                    return Drop("template_error", f"the chat template failed: {exc.detail}")
            elif opts.render == "chatml":
                record["text"] = render_chatml(messages, tools)
            undeclared = undeclared_calls(messages, tools)
            if undeclared:  # counted, not fixed: the data says what it says
                self.stats.warnings["undeclared_tool_call"] += undeclared
            records.append(record)
        return records

    @staticmethod
    def _render_chat(
        template: ChatTemplateFile,
        messages: list[dict[str, Any]],
        opts: ChatMLOptions,
        *,
        tools: list[dict[str, Any]] | None = None,
    ) -> str:
        """``text``: the template's rendering, as ``apply_chat_template`` renders it (the
        template file's special tokens, tool-call arguments as objects)."""
        compiled = compile_chat_template(template.for_tools(bool(tools)))
        variables = {
            **template.tokens,
            **opts.template_vars,
            "messages": template_messages(messages),
            "tools": tools,
            "documents": None,
            "add_generation_prompt": False,
        }
        return render_bounded(
            compiled, variables, timeout=opts.template_timeout, max_chars=opts.template_max_chars
        )

    def prepare_batch(
        self, docs: Sequence[Document], opts: ChatMLOptions, state: dict[str, Any]
    ) -> None:
        """The parts of every plain document over the budget, counted in one batch (on
        threads when CPUs are free): the splits then find every count they need."""
        limit = self._limit(opts)
        if limit is None or opts.on_overflow != "split":
            return
        if "guard" not in state:
            state.update(self._stream_state(opts))
        if not state["by_construction"]:  # custom templates shrink the budget per round
            return
        counter, guesses = self.counter, []
        for doc in docs:
            if doc.messages is None and doc.text.strip():
                text = state["guard"].clean(doc.text)
                if text is not None and counter.count(text) > limit:
                    guesses.extend(guess_parts(text, limit, counter))
        if guesses:
            counter.count_batch(guesses)

    def _stream_state(self, opts: ChatMLOptions) -> dict[str, Any]:
        template = None
        if opts.chat_template:
            template = load_chat_template(opts.chat_template)
            compile_chat_template(template.source)  # a syntax error before any record
        guard = conversation_guard(opts)
        markers = guard.markers
        system = opts.system_message
        if system is not None:  # configuration text is escaped too, never dropped
            system = MarkupGuard(markers, policy="escape").clean(system)
        return {
            "message_keys": set(),
            "record_keys": set(),
            "guard": guard,
            "system": system,
            "metadata": MetadataWriter(self.stats.warnings, schema=self.schema),
            "chat_template": template,
            "by_construction": opts.user_template == DEFAULT_USER_TEMPLATE
            and opts.assistant_template == DEFAULT_ASSISTANT_TEMPLATE
            and opts.markup != "strip",
            # the default templates are rendered without Jinja (see default_user_prompt)
            "user": None
            if opts.user_template == DEFAULT_USER_TEMPLATE
            else compile_template(opts.user_template),
            "assistant": None
            if opts.assistant_template == DEFAULT_ASSISTANT_TEMPLATE
            else compile_template(opts.assistant_template),
        }

    def token_texts(self, record: Record, doc: Document) -> list[str]:
        """Every message's content and reasoning; no per-message overhead is added."""
        return [
            m[key]
            for m in record["messages"]
            for key in ("content", "reasoning_content")
            if isinstance(m.get(key), str)
        ]

    def _count_reasoning(self, messages: list[dict[str, Any]]) -> None:
        """``reasoning_content`` kept: messages (and tokens, when counted) in ``events``."""
        reasoning = [r for m in messages if isinstance(r := m.get("reasoning_content"), str)]
        if not reasoning:
            return
        self.stats.events["reasoning_messages"] += len(reasoning)
        if self.counter is not None:
            self.stats.events["reasoning_tokens"] += sum(self.counter.count(r) for r in reasoning)

    def token_limit(self, opts: ChatMLOptions) -> int | None:
        return opts.max_tokens_per_message

    def features(self, state: dict[str, Any]) -> list[dict[str, Any]] | None:
        """``messages`` as a list of the message keys this output used (no empty
        ``tool_calls`` columns appear in conversations that had none)."""
        from qudata.pack.metadata import message_features, metadata_features

        message = message_features(state.get("metadata"), MESSAGE_KEYS)
        if self.options.tool_arguments == "object":
            message = json_arguments(message)
        out: list[dict[str, Any]] = [{"name": "messages", "list": message}]
        if "tools" in state.get("record_keys", ()):
            out.append({"name": "tools", "dtype": "json"})
        if "parallel_tool_calls" in state.get("record_keys", ()):
            out.append({"name": "parallel_tool_calls", "dtype": "bool"})
        for kind in MEDIA_KINDS:
            if kind in state.get("record_keys", ()):
                out.append({"name": kind, "list": {"dtype": "string"}})
        if self.options.include_metadata:
            out.append({"name": "metadata", "struct": metadata_features(state.get("metadata"))})
        if self.options.chat_template or self.options.render == "chatml":
            out.append({"name": "text", "dtype": "string"})
        return out

    def validate(self, record: Record, state: dict[str, Any]) -> list[str]:
        # no hygiene walk: the JSON encoder refuses lone surrogates and NaN (see output.py)
        return [p.code for p in validate_chatml(record, hygiene=False)]
