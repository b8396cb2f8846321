"""ChatML: conversations in the OpenAI ``messages`` shape, checked, within budget, unforgeable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from qudata.config import DEFAULT_ASSISTANT_TEMPLATE, DEFAULT_USER_TEMPLATE, ChatMLOptions
from qudata.errors import InputError
from qudata.models import Document
from qudata.normalize.problems import conversation_problems
from qudata.normalize.tools import undeclared_calls
from qudata.pack.base import Formatter, Record
from qudata.pack.budget import guess_parts, split_to_budget, truncate_to_budget
from qudata.pack.chatml_render import render_chatml
from qudata.pack.markup import MARKUP_EVENTS, MarkupGuard, conversation_guard
from qudata.pack.metadata import MetadataWriter
from qudata.pack.templates import (
    compile_chat_template,
    compile_template,
    load_template_source,
    render_bounded,
    render_prompt,
)
from qudata.quality.report import Drop

__all__ = ["ChatMLFormatter", "default_user_prompt"]

_DROP = object()  # a cleaned value that must drop its record
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
    card: ClassVar[str | None] = "root"
    learns_schema: ClassVar[bool] = True
    options_model: ClassVar[type[ChatMLOptions]] = ChatMLOptions

    def format_document(
        self, doc: Document, opts: ChatMLOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        if "guard" not in state:
            state.update(self._stream_state(opts))
        if doc.messages is not None:
            extra = {k for m in doc.messages for k in m if k not in _MESSAGE_KEYS}
            if extra:  # said, not silent: ChatML messages carry only _MESSAGE_KEYS
                self.stats.warnings["message_key_dropped"] += 1
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
            if tools is _DROP:
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
            written = state["metadata"].messages(messages, _MESSAGE_KEYS)
            record: dict[str, Any] = {"messages": written}
            if tools is not None:
                record["tools"] = tools
            if doc.parallel_tool_calls is not None:
                record["parallel_tool_calls"] = doc.parallel_tool_calls
                state["record_keys"].add("parallel_tool_calls")
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
    def _prompt(template: Any, variables: dict[str, Any], opts: ChatMLOptions) -> str:
        return render_prompt(
            template, variables, timeout=opts.template_timeout, max_chars=opts.template_max_chars
        )

    @staticmethod
    def _render_chat(
        template: Any,
        messages: list[dict[str, Any]],
        opts: ChatMLOptions,
        *,
        tools: list[dict[str, Any]] | None = None,
    ) -> str:
        variables = {
            **opts.template_vars,
            "messages": messages,
            "tools": tools,
            "documents": None,
            "add_generation_prompt": False,
        }
        return render_bounded(
            template, variables, timeout=opts.template_timeout, max_chars=opts.template_max_chars
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

    def _clean(self, text: str, opts: ChatMLOptions, state: dict[str, Any]) -> str | None:
        """``text`` with chat markup escaped or stripped (``None``: drop the record).

        Runs before token budgets, so an escape can never push a message over one.
        """
        cleaned = state["guard"].clean(text)
        if cleaned is not None and cleaned != text:
            self.stats.events[MARKUP_EVENTS[opts.markup]] += 1
        return cleaned  # type: ignore[no-any-return]

    def _stream_state(self, opts: ChatMLOptions) -> dict[str, Any]:
        template = None
        if opts.chat_template:
            template = compile_chat_template(load_template_source(opts.chat_template))
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

    def _system(
        self, messages: list[dict[str, Any]], opts: ChatMLOptions, state: dict[str, Any]
    ) -> None:
        has_own = any(m.get("role") == "system" for m in messages)
        if has_own and opts.system_policy != "keep":
            messages[:] = [m for m in messages if m.get("role") != "system"]
            if opts.system_policy == "drop":
                return
        if state["system"] and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": state["system"]})

    def _clean_value(self, value: Any, opts: ChatMLOptions, state: dict[str, Any]) -> Any:
        """Every string inside ``value`` (tool-call arguments too) cleaned; ``_DROP`` if one
        must be dropped."""
        if isinstance(value, str):
            cleaned = self._clean(value, opts, state)
            return _DROP if cleaned is None else cleaned
        if isinstance(value, list):
            items = [self._clean_value(v, opts, state) for v in value]
            return _DROP if any(i is _DROP for i in items) else items
        if isinstance(value, dict):
            pairs = {
                k: self._clean_arguments(v, opts, state)
                if k == "arguments" and isinstance(v, str)
                else self._clean_value(v, opts, state)
                for k, v in value.items()
            }
            return _DROP if any(v is _DROP for v in pairs.values()) else pairs
        return value

    def _clean_arguments(self, text: str, opts: ChatMLOptions, state: dict[str, Any]) -> Any:
        """Tool-call arguments are a JSON string: clean the strings inside it and encode it
        again, so an escape stays valid JSON (``<\\|im_start|>``)."""
        import json

        try:
            decoded = json.loads(text)
        except ValueError:
            return self._clean_value(text, opts, state)
        cleaned = self._clean_value(decoded, opts, state)
        if cleaned is _DROP:
            return _DROP
        return text if cleaned == decoded else json.dumps(cleaned, ensure_ascii=False)

    def _limit(self, opts: ChatMLOptions) -> int | None:
        return opts.max_tokens_per_message if self.counter is not None else None

    def _overflow_error(self, doc: Document, what: str, tokens: int, limit: int) -> InputError:
        return InputError(
            f"{what} has {tokens} tokens > max_tokens_per_message {limit} (on_overflow: error)",
            source=doc.origin,
            line=doc.line,
            reason="too_long",
        )

    def _conversation(
        self, doc: Document, opts: ChatMLOptions, state: dict[str, Any]
    ) -> list[list[dict[str, Any]]] | Drop:
        assert doc.messages is not None
        messages = [{k: m[k] for k in _MESSAGE_KEYS if k in m} for m in doc.messages]
        self._system(messages, opts, state)
        for message in messages:
            for key in ("content", "name", "tool_calls", "tool_call_id"):
                if key in message and message[key] is not None:
                    message[key] = self._clean_value(message[key], opts, state)
                    if message[key] is _DROP:
                        return Drop("markup", f"a message's {key} holds chat markup (markup: drop)")
        limit = self._limit(opts)
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
                message["content"] = truncate_to_budget(content, limit, self.counter)
                self.stats.events["truncated_messages"] += 1
                self.stats.dropped_tokens["truncated"] += tokens - count(message["content"])
                continue
            if opts.on_overflow == "error":
                raise self._overflow_error(doc, f"a {message.get('role')} message", tokens, limit)
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
        text = self._clean(doc.text, opts, state)
        if text is None:
            return Drop("markup", "the text holds chat markup (markup: drop)")
        limit = self._limit(opts)
        if limit is None:
            return self._render(doc, [text], opts, state)
        count = self.counter.count
        tokens = count(text)
        if tokens > limit and opts.on_overflow == "drop":
            self.stats.dropped_tokens["too_long"] += tokens
            return Drop("too_long", f"the document has {tokens} tokens > {limit}")
        if tokens > limit and opts.on_overflow == "error":
            raise self._overflow_error(doc, "the document", tokens, limit)
        # The templates add text around each part: shrink the parts' budget until every
        # rendered message fits (a few rounds at most; one for the default templates).
        budget = limit
        for _ in range(6):
            parts = split_to_budget(text, budget, self.counter) if tokens > budget else [text]
            if opts.on_overflow == "truncate":
                parts = parts[:1]
            conversations = self._render(doc, parts, opts, state)
            if isinstance(conversations, Drop):
                return conversations
            prompts = max(
                count(m["content"]) for c in conversations for m in c if m["role"] != "assistant"
            )
            if prompts > limit:  # splitting the text cannot shorten a prompt
                self.stats.dropped_tokens["too_long"] += tokens
                return Drop("too_long", f"a rendered prompt has {prompts} tokens > {limit}")
            if state["by_construction"]:  # the assistant turn is the part itself
                break
            over = max(count(c[-1]["content"]) for c in conversations) - limit
            if over <= 0:
                break
            budget -= max(over, budget // 10, 1)
            if budget <= 0:
                self.stats.dropped_tokens["too_long"] += tokens
                return Drop("too_long", f"the assistant template alone exceeds {limit} tokens")
        else:
            self.stats.dropped_tokens["too_long"] += tokens
            return Drop("too_long", f"no split of the text fits {limit} tokens per message")
        if len(parts) > 1 or parts[0] is not text:
            if opts.on_overflow == "truncate":
                self.stats.events["truncated_messages"] += 1
                self.stats.dropped_tokens["truncated"] += tokens - count(parts[0])
            else:
                self.stats.events["split_documents"] += 1
                self.stats.events["split_parts"] += len(parts)
        return conversations

    def _render(
        self, doc: Document, parts: list[str], opts: ChatMLOptions, state: dict[str, Any]
    ) -> list[list[dict[str, Any]]] | Drop:
        """One conversation per part, from the user and assistant templates."""
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
                user = self._prompt(state["user"], variables, opts)
            if opts.assistant_template == DEFAULT_ASSISTANT_TEMPLATE:
                assistant: str | None = part
            else:
                assistant = self._prompt(state["assistant"], variables, opts)
                assistant = self._clean(assistant, opts, state)
            cleaned_user = self._clean(user, opts, state)  # a title can hold markup
            if cleaned_user is None or assistant is None:
                return Drop("markup", "a rendered message holds chat markup (markup: drop)")
            messages = [
                {"role": "user", "content": cleaned_user},
                {"role": "assistant", "content": assistant},
            ]
            self._system(messages, opts, state)
            conversations.append(messages)
        return conversations

    def token_texts(self, record: Record, doc: Document) -> list[str]:
        """Every message's content; no per-message overhead is added."""
        return [m["content"] for m in record["messages"] if isinstance(m.get("content"), str)]

    def token_limit(self, opts: ChatMLOptions) -> int | None:
        return opts.max_tokens_per_message

    def features(self, state: dict[str, Any]) -> list[dict[str, Any]] | None:
        """``messages`` as a list of the message keys this output used (no empty
        ``tool_calls`` columns appear in conversations that had none)."""
        from qudata.pack.metadata import message_features, metadata_features

        message = message_features(state.get("metadata"), _MESSAGE_KEYS)
        out: list[dict[str, Any]] = [{"name": "messages", "list": message}]
        if "tools" in state.get("record_keys", ()):
            out.append({"name": "tools", "dtype": "json"})
        if "parallel_tool_calls" in state.get("record_keys", ()):
            out.append({"name": "parallel_tool_calls", "dtype": "bool"})
        if self.options.include_metadata:
            out.append({"name": "metadata", "struct": metadata_features(state.get("metadata"))})
        if self.options.chat_template or self.options.render == "chatml":
            out.append({"name": "text", "dtype": "string"})
        return out

    def validate(self, record: Record, state: dict[str, Any]) -> list[str]:
        from qudata.quality.validate import validate_chatml

        # no hygiene walk: the JSON encoder refuses lone surrogates and NaN (see output.py)
        return [p.code for p in validate_chatml(record, hygiene=False)]
