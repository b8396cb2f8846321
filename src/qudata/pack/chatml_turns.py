"""How ChatML builds its turns: the system turn, markup cleaning, token budgets, and the
conversations of a plain document (from the user and assistant templates).

:class:`ChatMLTurns` is the base of :class:`~qudata.pack.chatml.ChatMLFormatter`,
which turns these conversations into records.
"""

from __future__ import annotations

from typing import Any

from qudata.account import Drop
from qudata.errors import InputError
from qudata.models import Document
from qudata.pack.base import Formatter
from qudata.pack.budget import split_to_budget, truncate_to_budget
from qudata.pack.chatml_options import (
    DEFAULT_ASSISTANT_TEMPLATE,
    DEFAULT_USER_TEMPLATE,
    ChatMLOptions,
)
from qudata.pack.markup import MARKUP_EVENTS
from qudata.pack.templates import render_prompt

__all__ = ["DROP_RECORD", "MESSAGE_KEYS", "ChatMLTurns", "default_user_prompt"]

#: A cleaned value that must drop its record.
DROP_RECORD = object()
#: The keys a ChatML message keeps.
MESSAGE_KEYS = (
    "role",
    "content",
    "reasoning_content",
    "name",
    "weight",
    "tool_calls",
    "tool_call_id",
)


def default_user_prompt(title: str, part: int, parts: int) -> str:
    """What :data:`~qudata.pack.chatml_options.DEFAULT_USER_TEMPLATE` renders (tested to
    be identical)."""
    of = f" (part {part} of {parts})" if parts > 1 else ""
    return f'Write a document titled "{title}"{of}.' if title else f"Write a document{of}."


class ChatMLTurns(Formatter[ChatMLOptions]):
    """The turns of ChatML conversations: what :class:`ChatMLFormatter` writes."""

    @staticmethod
    def _prompt(template: Any, variables: dict[str, Any], opts: ChatMLOptions) -> str:
        return render_prompt(
            template, variables, timeout=opts.template_timeout, max_chars=opts.template_max_chars
        )

    def _clean(self, text: str, opts: ChatMLOptions, state: dict[str, Any]) -> str | None:
        """``text`` with chat markup escaped or stripped (``None``: drop the record).

        Runs before token budgets, so an escape can never push a message over one.
        """
        cleaned = state["guard"].clean(text)
        if cleaned is not None and cleaned != text:
            self.stats.events[MARKUP_EVENTS[opts.markup]] += 1
        return cleaned  # type: ignore[no-any-return]

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
        """Every string inside ``value`` (tool-call arguments too) cleaned; ``DROP_RECORD`` if one
        must be dropped."""
        if isinstance(value, str):
            cleaned = self._clean(value, opts, state)
            return DROP_RECORD if cleaned is None else cleaned
        if isinstance(value, list):
            items = [self._clean_value(v, opts, state) for v in value]
            return DROP_RECORD if any(i is DROP_RECORD for i in items) else items
        if isinstance(value, dict):
            pairs = {
                k: self._clean_arguments(v, opts, state)
                if k == "arguments" and isinstance(v, str)
                else self._clean_value(v, opts, state)
                for k, v in value.items()
            }
            return DROP_RECORD if any(v is DROP_RECORD for v in pairs.values()) else pairs
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
        if cleaned is DROP_RECORD:
            return DROP_RECORD
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
        messages = [{k: m[k] for k in MESSAGE_KEYS if k in m} for m in doc.messages]
        self._system(messages, opts, state)
        for message in messages:
            for key in ("content", "reasoning_content", "name", "tool_calls", "tool_call_id"):
                if key in message and message[key] is not None:
                    message[key] = self._clean_value(message[key], opts, state)
                    if message[key] is DROP_RECORD:
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
