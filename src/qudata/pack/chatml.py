"""ChatML: conversations in the OpenAI ``messages`` shape, with optional metadata."""

from __future__ import annotations

from typing import Any, ClassVar

from qudata.config import ChatMLOptions
from qudata.models import Document
from qudata.pack.base import Formatter, Record
from qudata.pack.metadata import MetadataWriter
from qudata.quality.report import Drop

__all__ = ["ChatMLFormatter"]

_MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id")


class ChatMLFormatter(Formatter[ChatMLOptions]):
    """Conversational training records: ``{"messages": [...], "metadata": {...}}``.

    A document that already is a conversation (``messages``, or ShareGPT
    ``conversations``) stays one. A plain document becomes a system turn (only
    when ``system_message`` is set), a user turn asking for the document by its
    title (``user_prompt``, or ``user_prompt_untitled`` without a title), and
    the document text as the assistant turn.

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
        if doc.messages is not None:
            messages = [{k: m[k] for k in _MESSAGE_KEYS if k in m} for m in doc.messages]
            if not messages:
                return Drop("empty_conversation", "the conversation has no messages")
            if opts.system_message and messages[0].get("role") != "system":
                messages.insert(0, {"role": "system", "content": opts.system_message})
        else:
            if not doc.text.strip():
                return Drop("empty_text", "the document text is empty")
            title = doc.title
            prompt = (
                opts.user_prompt.replace("{title}", " ".join(title.split()))
                if title and title.strip()
                else opts.user_prompt_untitled
            )
            messages = [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": doc.text},
            ]
            if opts.system_message:
                messages.insert(0, {"role": "system", "content": opts.system_message})
        record: dict[str, Any] = {"messages": messages}
        if opts.include_metadata:
            if "metadata" not in state:
                state["metadata"] = MetadataWriter(self.stats.warnings)
            record["metadata"] = state["metadata"].build(doc)
        return [record]
