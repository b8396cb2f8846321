"""The options of ChatML (``pack.chatml``), and the default templates of its turns.

They hold for every format that writes conversations (their markup policy and chat
template): JSONL, Parquet and packed sequences take them with :func:`chatml_options`.
"""

from __future__ import annotations

from typing import Literal, cast

from pydantic import Field, field_validator

from qudata.config import Config
from qudata.sections import Section

__all__ = [
    "CHAT_TEMPLATE_ARGUMENTS",
    "DEFAULT_ASSISTANT_TEMPLATE",
    "DEFAULT_USER_TEMPLATE",
    "ChatMLOptions",
    "chatml_options",
]

#: The user turn made from a plain document (variables: title, text, source, topics,
#: language, id, metadata, part, parts).
DEFAULT_USER_TEMPLATE = (
    '{% if title %}Write a document titled "{{ title }}"'
    "{% if parts > 1 %} (part {{ part }} of {{ parts }}){% endif %}."
    "{% else %}Write a document{% if parts > 1 %} (part {{ part }} of {{ parts }}){% endif %}."
    "{% endif %}"
)
#: The assistant turn made from a plain document (or from one part of it).
DEFAULT_ASSISTANT_TEMPLATE = "{{ text }}"


#: The arguments qudata passes to a chat template (``template_vars`` cannot set them).
CHAT_TEMPLATE_ARGUMENTS = ("messages", "tools", "documents", "add_generation_prompt")


class ChatMLOptions(Section):
    """``pack.chatml``: conversations in the OpenAI ``messages`` shape."""

    system_message: str | None = Field(
        default=None,
        description="system turn added to every conversation without one (none: no system turn)",
    )
    system_policy: Literal["keep", "replace", "drop"] = Field(
        default="keep", description="a record's own system turn: `keep`, `replace`, `drop`"
    )
    include_metadata: bool = Field(default=False, description="add the `metadata` object")
    max_tokens_per_message: int | None = Field(
        default=4096, gt=0, description="token budget of one message (exact counter)"
    )
    on_overflow: Literal["split", "truncate", "drop", "error"] = Field(
        default="split",
        description="a message over the budget: `split`, `truncate`, `drop`, `error`",
    )
    user_template: str = Field(
        default=DEFAULT_USER_TEMPLATE,
        description="user turn made from a plain document (a Jinja template)",
        json_schema_extra={"shown_default": "see [Templates](formats.md#templates)"},
    )
    assistant_template: str = Field(
        default=DEFAULT_ASSISTANT_TEMPLATE,
        description="assistant turn made from a plain document",
    )
    markup: Literal["escape", "strip", "drop"] = Field(
        default="escape", description="chat markup in content: `escape`, `strip`, `drop`"
    )
    render: Literal["none", "chatml"] = Field(
        default="none", description="`chatml`: add a `text` field in ChatML markup"
    )
    chat_template: str | None = Field(
        default=None, description="a Hugging Face chat template (file or string) for `text`"
    )
    template_vars: dict[str, str] = Field(
        default_factory=dict,
        description="variables of the chat template (`bos_token`, `eos_token`)",
    )
    template_timeout: float = Field(
        default=5.0,
        gt=0,
        description="seconds one template rendering may take (else `template_error`)",
    )
    template_max_chars: int = Field(
        default=1_000_000,
        gt=0,
        description="characters one template rendering may produce (else `template_error`)",
    )
    tool_arguments: Literal["object", "string"] = Field(
        default="object",
        description="a tool call's `arguments`: the JSON `object` (what chat templates "
        "expect) or OpenAI's JSON `string`",
    )

    @field_validator("template_vars")
    @classmethod
    def _no_reserved_vars(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(set(value) & set(CHAT_TEMPLATE_ARGUMENTS))
        if taken:
            raise ValueError(
                f"template_vars: {', '.join(taken)} is set by qudata when it renders "
                "(reserved: " + ", ".join(CHAT_TEMPLATE_ARGUMENTS) + ")"
            )
        return value


def chatml_options(config: Config) -> ChatMLOptions:
    """The run's ``pack.chatml`` options: their markup policy and chat template hold for
    every format that writes conversations (JSONL, Parquet and packed sequences too)."""
    return cast(ChatMLOptions, config.pack.options("chatml"))
