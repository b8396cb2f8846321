"""Column mapping in the style of LLaMA-Factory's ``dataset_info.json``.

``input.columns`` maps qudata's names to a file's keys (Dolly: ``{prompt: instruction,
query: context, response: response}``); :meth:`Shape.apply` renames a row's keys to
the names the detector knows; a ``prompt`` mapped alone is a document's text (as in
LLaMA-Factory's pretraining entries). ``input.tags`` names the keys and role values of
conversation turns, and ``input.role_map`` adds role names (``{bing: assistant}``).

    >>> Shape(columns={"prompt": "question", "response": "reply"}).apply(
    ...     {"question": "Hi?", "reply": "Hello."})
    {'instruction': 'Hi?', 'output': 'Hello.'}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["COLUMN_NAMES", "TAG_NAMES", "Shape"]

#: qudata's column names -> the key the detector reads (``text`` and ``id`` are the
#: normaliser's ``text_key`` and ``id_key``).
COLUMN_NAMES: dict[str, str] = {
    "prompt": "instruction",
    "query": "input",
    "response": "output",
    "history": "history",
    "system": "system",
    "messages": "messages",
    "tools": "tools",
    "chosen": "chosen",
    "rejected": "rejected",
    "kto_tag": "kto_tag",
    "images": "images",
    "videos": "videos",
    "audios": "audios",
    "text": "text",
    "id": "id",
}
#: Columns that make a record more than a prompt: with none of them mapped, a mapped
#: ``prompt`` is the text of a document (LLaMA-Factory's pretraining entries,
#: ``{"columns": {"prompt": "text"}}``).
_BEYOND_PROMPT = frozenset({"query", "response", "history", "messages", "chosen", "rejected"})
#: The tags of conversation turns: key names (role, content) and role values.
TAG_NAMES = (
    "role_tag",
    "content_tag",
    "user_tag",
    "assistant_tag",
    "system_tag",
    "function_tag",
    "observation_tag",
)
_TAG_ROLES = {
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
    "function_tag": "function_call",
    "observation_tag": "tool",
}


@dataclass(frozen=True)
class Shape:
    """How to read a file whose keys differ from the common shapes (defaults: none)."""

    columns: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    role_map: Mapping[str, str] = field(default_factory=dict)

    @property
    def role_key(self) -> str | None:
        return self.tags.get("role_tag")

    @property
    def content_key(self) -> str | None:
        return self.tags.get("content_tag")

    def roles(self) -> dict[str, str]:
        """Extra role names (lower case) -> role; ``function_call`` marks a call turn."""
        out = {k.strip().lower(): v for k, v in self.role_map.items()}
        for tag, role in _TAG_ROLES.items():
            if tag in self.tags:
                out[self.tags[tag].strip().lower()] = role
        return out

    @property
    def text_column(self) -> str | None:
        """The key of the text: ``columns.text``, or a ``prompt`` mapped alone."""
        if "text" in self.columns:
            return self.columns["text"]
        if "prompt" in self.columns and not _BEYOND_PROMPT & self.columns.keys():
            return self.columns["prompt"]
        return None

    def renames(self) -> dict[str, str]:
        """The file's keys -> the names the detector reads (only those that differ)."""
        text = self.text_column
        return {
            key: COLUMN_NAMES[name]
            for name, key in self.columns.items()
            if name not in ("text", "id") and key != COLUMN_NAMES[name] and key != text
        }

    def apply(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """``row`` with the mapped keys renamed (unchanged without ``columns``)."""
        renames = self.renames()
        if not renames:
            return row
        out = {k: v for k, v in row.items() if k not in renames}
        for key, target in renames.items():
            if key in row:
                out[target] = row[key]
        return out
