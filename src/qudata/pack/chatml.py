"""ChatML: conversations in the OpenAI ``messages`` shape, checked, within budget, unforgeable."""

from __future__ import annotations

from typing import Any, ClassVar

from qudata.config import DEFAULT_ASSISTANT_TEMPLATE, DEFAULT_USER_TEMPLATE, ChatMLOptions
from qudata.conversations import conversation_problems
from qudata.errors import InputError
from qudata.models import Document
from qudata.pack.base import Formatter, Record
from qudata.pack.budget import split_to_budget, truncate_to_budget
from qudata.pack.markup import CHATML_MARKERS, MarkupGuard, markers_in_template
from qudata.pack.metadata import MetadataWriter
from qudata.pack.templates import (
    compile_chat_template,
    compile_template,
    load_template_source,
    render_prompt,
)
from qudata.quality.report import Drop

__all__ = ["ChatMLFormatter", "default_user_prompt"]

_MARKUP_EVENT = {"escape": "markup_escaped", "strip": "markup_stripped", "drop": "markup_dropped"}
_MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id")


def default_user_prompt(title: str, part: int, parts: int) -> str:
    """What :data:`~qudata.config.DEFAULT_USER_TEMPLATE` renders (tested to be identical)."""
    of = f" (part {part} of {parts})" if parts > 1 else ""
    return f'Write a document titled "{title}"{of}.' if title else f"Write a document{of}."


class ChatMLFormatter(Formatter[ChatMLOptions]):
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
    options_model: ClassVar[type[ChatMLOptions]] = ChatMLOptions

    def format_document(
        self, doc: Document, opts: ChatMLOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        if "guard" not in state:
            state.update(self._stream_state(opts))
        if doc.messages is not None:
            conversations = self._conversation(doc, opts)
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
        guard: MarkupGuard = state["guard"]
        records = []
        for messages in conversations:
            for message in messages:
                content = message.get("content")
                if isinstance(content, str):
                    cleaned = guard.clean(content)
                    if cleaned is None:
                        return Drop("markup", "content holds chat markup (markup: drop)")
                    if cleaned is not content and cleaned != content:
                        self.stats.events[_MARKUP_EVENT[opts.markup]] += 1
                    message["content"] = cleaned
            # a conversation made by the default templates is well formed by construction
            # (non-empty text, fixed roles); everything else is checked
            problems = (
                []
                if state["by_construction"] and doc.messages is None
                else (conversation_problems(messages))
            )
            if problems:
                return Drop(problems[0], "; ".join(problems))
            record: dict[str, Any] = {"messages": messages}
            if opts.include_metadata:
                record["metadata"] = state["metadata"].build(doc)
            if state["chat_template"] is not None:
                record["text"] = state["chat_template"].render(
                    messages=messages,
                    tools=None,
                    documents=None,
                    add_generation_prompt=False,
                    **opts.template_vars,
                )
            elif opts.render == "chatml":
                record["text"] = "".join(
                    f"<|im_start|>{m['role']}\n{m.get('content') or ''}<|im_end|>\n"
                    for m in messages
                )
            records.append(record)
        return records

    def _stream_state(self, opts: ChatMLOptions) -> dict[str, Any]:
        markers = set(CHATML_MARKERS)
        template = None
        if opts.chat_template:
            source = load_template_source(opts.chat_template)
            template = compile_chat_template(source)
            markers |= markers_in_template(source, opts.template_vars.values())
        return {
            "guard": MarkupGuard(markers, policy=opts.markup),
            "metadata": MetadataWriter(self.stats.warnings),
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

    def _system(self, messages: list[dict[str, Any]], opts: ChatMLOptions) -> None:
        has_own = any(m.get("role") == "system" for m in messages)
        if has_own and opts.system_policy != "keep":
            messages[:] = [m for m in messages if m.get("role") != "system"]
            if opts.system_policy == "drop":
                return
        if opts.system_message and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": opts.system_message})

    def _conversation(
        self, doc: Document, opts: ChatMLOptions
    ) -> list[list[dict[str, Any]]] | Drop:
        assert doc.messages is not None
        messages = [{k: m[k] for k in _MESSAGE_KEYS if k in m} for m in doc.messages]
        self._system(messages, opts)
        limit = opts.max_tokens_per_message if self.counter is not None else None
        if limit is None:
            return [messages]
        count = self.counter.count
        for message in messages:
            content = message.get("content")
            if not isinstance(content, str):
                continue
            tokens = count(content)
            if tokens <= limit:
                continue
            if opts.on_overflow == "truncate":
                message["content"] = truncate_to_budget(content, limit, count)
                self.stats.events["truncated_messages"] += 1
                self.stats.dropped_tokens["truncated"] += tokens - count(message["content"])
                continue
            if opts.on_overflow == "error":
                raise InputError(
                    f"a {message.get('role')} message has {tokens} tokens > "
                    f"max_tokens_per_message {limit} (on_overflow: error)",
                    source=doc.origin,
                    line=doc.line,
                    reason="too_long",
                )
            self.stats.dropped_tokens["too_long"] += sum(
                count(m["content"]) for m in messages if isinstance(m.get("content"), str)
            )
            return Drop(
                "too_long", f"a {message.get('role')} message has {tokens} tokens > {limit}"
            )
        return [messages]

    def _from_document(
        self, doc: Document, opts: ChatMLOptions, state: dict[str, Any]
    ) -> list[list[dict[str, Any]]] | Drop:
        if not doc.text.strip():
            return Drop("empty_text", "the document text is empty")
        parts = [doc.text]
        limit = opts.max_tokens_per_message if self.counter is not None else None
        if limit is not None:
            count = self.counter.count
            tokens = count(doc.text)
            if tokens > limit:
                if opts.on_overflow == "drop":
                    self.stats.dropped_tokens["too_long"] += tokens
                    return Drop("too_long", f"the document has {tokens} tokens > {limit}")
                if opts.on_overflow == "error":
                    raise InputError(
                        f"the document has {tokens} tokens > max_tokens_per_message {limit} "
                        "(on_overflow: error)",
                        source=doc.origin,
                        line=doc.line,
                        reason="too_long",
                    )
                parts = split_to_budget(doc.text, limit, count)
                if opts.on_overflow == "truncate":
                    parts = parts[:1]
                    self.stats.events["truncated_messages"] += 1
                    self.stats.dropped_tokens["truncated"] += tokens - count(parts[0])
                else:
                    self.stats.events["split_documents"] += 1
                    self.stats.events["split_parts"] += len(parts)
        conversations = []
        title = " ".join((doc.title or "").split())
        for number, part in enumerate(parts, 1):
            variables: dict[str, Any] = {
                "title": title,
                "text": part,
                "source": doc.source,
                "topics": doc.topics,
                "language": doc.metadata.get("language"),
                "id": doc.id,
                "metadata": doc.metadata,
                "part": number,
                "parts": len(parts),
            }
            if opts.user_template == DEFAULT_USER_TEMPLATE:  # the same text, without Jinja
                user = default_user_prompt(title, number, len(parts))
            else:
                user = render_prompt(state["user"], variables)
            if opts.assistant_template == DEFAULT_ASSISTANT_TEMPLATE:
                assistant = part
            else:
                assistant = render_prompt(state["assistant"], variables)
            messages = [
                {"role": "user", "content": user},
                {"role": "assistant", "content": assistant},
            ]
            self._system(messages, opts)
            conversations.append(messages)
        return conversations

    def token_texts(self, record: Record, doc: Document) -> list[str]:
        """Every message's content; no per-message overhead is added."""
        return [m["content"] for m in record["messages"] if isinstance(m.get("content"), str)]

    def token_limit(self, opts: ChatMLOptions) -> int | None:
        return opts.max_tokens_per_message

    def validate(self, record: Record, state: dict[str, Any]) -> list[str]:
        from qudata.quality.validate import validate_chatml

        # no hygiene walk: the JSON encoder refuses lone surrogates and NaN (see output.py)
        return [p.code for p in validate_chatml(record, hygiene=False)]
