"""The ``input`` section: where the text and id of each record are, what a bad one does."""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from pydantic import Field, field_validator

from qudata.io.lines import DEFAULT_MAX_LINE_BYTES
from qudata.sections import Section, parse_size

__all__ = ["InputConfig", "Role"]

#: The role of a conversation turn.
Role = Literal["system", "user", "assistant", "tool"]


def _known(value: dict[str, str], names: Collection[str], what: str) -> dict[str, str]:
    """``value`` if its keys are all in ``names``; else the error naming the first unknown."""
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r} (allowed: {', '.join(names)})")
    return value


class InputConfig(Section):
    """``input``: where the text and id of each record are, and what a bad record does.

    ``columns`` maps qudata's names (prompt, query, response, history, system, messages,
    tools, chosen, rejected, kto_tag, images, videos, audios, text, id) to the file's
    keys (a ``prompt`` mapped alone is the text, as LLaMA-Factory's pretraining entries),
    ``tags`` the keys and role values of conversation turns (role_tag, content_tag,
    user_tag, assistant_tag, system_tag, function_tag, observation_tag), as
    LLaMA-Factory's ``dataset_info.json``; ``role_map`` adds role names
    (``{bing: assistant}``). ``unknown_keys`` says what a top-level key that is not
    mapped does (see :mod:`qudata.normalize.account`); ``undesirable`` whether formats
    other than ``kto`` drop KTO records labelled undesirable.
    ``max_line_bytes`` bounds a JSONL line (``64MB``; a longer one is rejected as
    ``line_too_long`` while it is read) and ``max_document_chars`` a document's text
    (none by default; a longer one is rejected as ``document_too_long``).
    """

    text_key: str = Field(
        default="text",
        description="field holding the text (e.g. `raw_content`, `body`); `content` is "
        "accepted too",
    )
    id_key: str = Field(
        default="id",
        description="field holding the id; a missing id becomes `doc-<hash of text>` (`-2`, "
        "`-3`, ... on repeats)",
    )
    on_error: Literal["skip", "fail"] = Field(
        default="skip",
        description="bad record or unreadable input: `skip` it into `rejects.jsonl`, or "
        "`fail` (exit 1, no output)",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="qudata's names → the file's keys (`--column NAME=KEY`): `prompt`, "
        "`query`, `response`, `history`, `system`, `messages`, `tools`, `chosen`, `rejected`, "
        "`kto_tag`, `images`, `videos`, `audios`, `text`, `id`; e.g. Dolly `{prompt: "
        "instruction, query: context, response: response}`; a `prompt` mapped alone is the "
        "text (LLaMA-Factory's pretraining entries)",
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="keys and role values of conversation turns: `role_tag`, `content_tag`, "
        "`user_tag`, `assistant_tag`, `system_tag`, `function_tag`, `observation_tag` (as "
        "LLaMA-Factory)",
    )
    role_map: dict[str, Role] = Field(
        default_factory=dict,
        description="more role names → `system`, `user`, `assistant`, `tool` (e.g. "
        "`{bing: assistant}`)",
    )
    unknown_keys: Literal["carry", "warn", "fail"] = Field(
        default="carry",
        description="a top-level key no shape maps: `carry` it in `metadata` (named with a "
        "count in the summary, manifest and card), `warn` (the same, and a warning per key), "
        "or `fail` (the record is rejected as `unknown_key`)",
    )
    undesirable: Literal["drop", "keep"] = Field(
        default="drop",
        description="a KTO record labelled undesirable (`label: false`): every format but "
        "`kto` drops it (`undesirable_completion`), or `keep` it",
    )
    max_line_bytes: int | str = Field(
        default=f"{DEFAULT_MAX_LINE_BYTES // 10**6}MB",  # 64MB, the readers' default
        description="longest JSONL line (a size as for `shard_size`); a longer one is "
        "rejected as `line_too_long`",
    )
    max_document_chars: int | None = Field(
        default=None,
        gt=0,
        description="longest document text (none: no limit); a longer one is rejected as "
        "`document_too_long`",
    )

    @property
    def text_field(self) -> str:
        """The key of the text (``columns.text``, or a ``prompt`` mapped alone, wins over
        ``text_key``)."""
        from qudata.normalize.columns import Shape

        return Shape(columns=self.columns).text_column or self.text_key

    @property
    def id_field(self) -> str:
        """The key of the id (``columns.id`` wins over ``id_key``)."""
        return self.columns.get("id", self.id_key)

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        from qudata.normalize.columns import COLUMN_NAMES

        return _known(value, COLUMN_NAMES, "column")

    @field_validator("tags")
    @classmethod
    def _known_tags(cls, value: dict[str, str]) -> dict[str, str]:
        from qudata.normalize.columns import TAG_NAMES

        return _known(value, TAG_NAMES, "tag")

    @field_validator("max_line_bytes")
    @classmethod
    def _valid_line_bytes(cls, value: int | str) -> int | str:
        if parse_size(value) <= 0:
            raise ValueError("max_line_bytes must be positive")
        return value
