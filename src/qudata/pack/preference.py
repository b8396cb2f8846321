"""Preference pairs: TRL's conversational preference records, for DPO and reward models.

Every line is ``{"prompt": [messages ending with a user turn], "chosen": [assistant
message(s)], "rejected": [assistant message(s)]}``, plus ``tools`` when the record has
them and ``metadata`` with ``include_metadata``. Chat markup in any string is escaped,
stripped or dropped (``markup``, as for ChatML). Records that are not preference pairs
are dropped from this format (``not_preference``); the SFT formats write a pair as its
chosen conversation.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from pydantic import Field

from qudata.account import Drop
from qudata.models import Document, json_kind
from qudata.normalize.problems import conversation_problems
from qudata.pack.base import Formatter, Record
from qudata.pack.chatml_rules import message_rules, record_rules
from qudata.pack.chatml_turns import MESSAGE_KEYS
from qudata.pack.markup import MARKUP_EVENTS, MarkupGuard
from qudata.pack.metadata import MetadataWriter
from qudata.quality.problems import FileRules, FileValidation, Problem, add_hints, make_problem
from qudata.quality.problems import hygiene as string_hygiene
from qudata.sections import Section

__all__ = [
    "PreferenceFormatter",
    "PreferenceOptions",
    "PreferenceRules",
    "clean_markup",
    "column_texts",
    "conversation_columns",
    "finish_records",
    "record_features",
    "validate_preference",
]


# the problem codes of a preference record, with their hints
add_hints(
    {
        "missing_preference_field": 'a preference record has "prompt", "chosen" and "rejected", '
        "each a non-empty list of messages",
        "prompt_not_user_last": "the prompt ends with a user turn",
        "answer_not_assistant": "chosen and rejected start with an assistant message",
    }
)


class PreferenceOptions(Section):
    """``pack.preference``: TRL conversational preference records (prompt, chosen, rejected)."""

    include_metadata: bool = Field(
        default=False, description="add the `metadata` object to preference records"
    )
    markup: Literal["escape", "strip", "drop"] = Field(
        default="escape",
        description="chat markup in any string of a pair: `escape`, `strip`, `drop` (as ChatML)",
    )


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: m[k] for k in MESSAGE_KEYS if k in m} for m in messages]


def note_dropped_keys(
    warnings: Counter[str], messages: Iterable[dict[str, Any]], keys: Iterable[str]
) -> None:
    """Say (once per record, and per key) which message keys the output leaves out,
    as ChatML does: nothing is dropped silently."""
    kept = set(keys)
    extra = {k for m in messages for k in m if k not in kept}
    if extra:
        warnings["message_key_dropped"] += 1
        for key in sorted(extra):
            warnings[f"message_key_dropped:{key}"] += 1


def clean_markup(value: Any, guard: MarkupGuard) -> Any:
    """Every string in ``value`` with ChatML markers escaped or stripped (tool-call
    arguments decoded first, so they stay valid JSON); ``None`` if one must drop."""
    if isinstance(value, str):
        return guard.clean(value)
    if isinstance(value, list):
        items = [clean_markup(v, guard) for v in value]
        return (
            None
            if any(i is None and v is not None for i, v in zip(items, value, strict=True))
            else items
        )
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "arguments" and isinstance(item, str) and guard.found(item):
                decoded = (
                    clean_markup(json.loads(item), guard) if _is_json(item) else guard.clean(item)
                )
                if decoded is None:
                    return None
                out[key] = (
                    decoded if isinstance(decoded, str) else json.dumps(decoded, ensure_ascii=False)
                )
                continue
            cleaned = clean_markup(item, guard)
            if cleaned is None and item is not None:
                return None
            out[key] = cleaned
        return out
    return value


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def conversation_columns(
    record: dict[str, Any],
    columns: tuple[str, ...],
    *,
    missing: str,
    prompt_roles: tuple[str, ...],
    prompt_code: str,
) -> list[Problem]:
    """The problems of a record's message-list ``columns``: each a non-empty list of
    messages (else ``missing``), ``prompt`` ending with one of ``prompt_roles`` (else
    ``prompt_code``), the others starting with an assistant message."""
    out: list[Problem] = []
    for key in columns:
        value = record.get(key)
        if not isinstance(value, list) or not value:
            shown = json_kind(value) if key in record else "missing"
            out.append(make_problem(missing, key, f'"{key}" is {shown}'))
            continue
        for i, msg in enumerate(value):
            out.extend(message_rules(msg, f"{key}[{i}]"))
        edge = value[-1] if key == "prompt" else value[0]
        role = edge.get("role") if isinstance(edge, dict) else None
        if key == "prompt" and role not in prompt_roles:
            out.append(make_problem(prompt_code, key, f"the prompt ends with {role!r}"))
        elif key != "prompt" and role != "assistant":
            out.append(make_problem("answer_not_assistant", key, f'"{key}" starts with {role!r}'))
    return out


def validate_preference(record: Any, *, hygiene: bool = True) -> list[Problem]:
    """The rules of a TRL conversational preference record: ``prompt`` (ending with a
    user turn), ``chosen`` and ``rejected`` (starting with an assistant message)."""
    if not isinstance(record, dict):
        return [make_problem("not_an_object", "$", f"the record is {json_kind(record)}")]
    out = conversation_columns(
        record,
        ("prompt", "chosen", "rejected"),
        missing="missing_preference_field",
        prompt_roles=("user",),
        prompt_code="prompt_not_user_last",
    )
    out.extend(record_rules(record))
    if hygiene:
        out.extend(string_hygiene(record))
    return out


class PreferenceRules(FileRules):
    """``qudata validate --format preference``: each record's rules."""

    def check(self, record: Any, line: int, result: FileValidation) -> list[Problem]:
        return validate_preference(record)


def finish_records(
    formatter: Formatter[Any],
    records: list[Record],
    columns: tuple[str, ...],
    doc: Document,
    opts: Any,
    state: dict[str, Any],
    before: int,
) -> Drop | None:
    """Add the document's tools (markup cleaned) and metadata to its ``records``, count a
    markup event if the guard in ``state`` cleaned anything since ``before`` hits, and
    note the message keys of ``columns``; a ``Drop`` if the tools hold markup to drop."""
    guard = state["guard"]
    tools = clean_markup(doc.tools, guard) if doc.tools else None
    if doc.tools and tools is None:
        return Drop("markup", "a tool schema holds chat markup (markup: drop)")
    if guard.hits > before:
        formatter.stats.events[MARKUP_EVENTS[opts.markup]] += 1
    keys = state.setdefault("message_keys", set())
    for record in records:
        for column in columns:
            for message in record[column]:
                keys.update(message)
        if tools:
            record["tools"] = tools
            state["tools"] = True
        if opts.include_metadata:
            if "metadata" not in state:
                state["metadata"] = MetadataWriter(
                    formatter.stats.warnings, schema=formatter.schema
                )
            record["metadata"] = state["metadata"].build(doc)
    return None


def column_texts(record: Record, columns: tuple[str, ...]) -> list[str]:
    """Every string content of the messages in ``columns``."""
    return [
        m["content"] for key in columns for m in record[key] if isinstance(m.get("content"), str)
    ]


def record_features(
    formatter: Formatter[Any],
    state: dict[str, Any],
    columns: tuple[str, ...],
    message_keys: tuple[str, ...],
    middle: tuple[dict[str, Any], ...] = (),
) -> list[dict[str, Any]]:
    """The features of records of message-list ``columns`` (the ``message_keys`` seen,
    in that order), then ``middle``, then ``tools`` and ``metadata`` when written."""
    from qudata.pack.metadata import metadata_features

    dtypes = {"weight": "float64", "tool_calls": "json"}
    keys = [k for k in message_keys if k in state.get("message_keys", ())]
    out: list[dict[str, Any]] = [
        {  # a list per column: a shared one would become a YAML alias in the card
            "name": column,
            "list": [
                {"name": k, "dtype": dtypes.get(k, "string")} for k in keys or ["role", "content"]
            ],
        }
        for column in columns
    ]
    out.extend(middle)
    if state.get("tools"):
        out.append({"name": "tools", "dtype": "json"})
    if formatter.options.include_metadata:
        out.append({"name": "metadata", "struct": metadata_features(state.get("metadata"))})
    return out


class PreferenceFormatter(Formatter[PreferenceOptions]):
    """``{"prompt", "chosen", "rejected"}`` records (TRL ``DPOTrainer`` datasets).

    Example::

        records = PreferenceFormatter().format_documents([
            {"prompt": "2+2?", "chosen": "4", "rejected": "5"}])
        # [{"prompt": [{"role": "user", "content": "2+2?"}],
        #   "chosen": [{"role": "assistant", "content": "4"}],
        #   "rejected": [{"role": "assistant", "content": "5"}]}]
    """

    name: ClassVar[str] = "preference"
    extension: ClassVar[str] = ".jsonl"
    card: ClassVar[str | None] = "root"
    options_model: ClassVar[type[PreferenceOptions]] = PreferenceOptions
    learns_schema: ClassVar[bool] = True
    file_rules: ClassVar[type[FileRules] | None] = PreferenceRules

    def format_document(
        self, doc: Document, opts: PreferenceOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        if doc.messages is None or doc.rejected is None or doc.prompt_turns is None:
            return Drop("not_preference", "the record is not a chosen/rejected pair")
        note_dropped_keys(self.stats.warnings, [*doc.messages, *doc.rejected], MESSAGE_KEYS)
        prompt = _messages(doc.messages[: doc.prompt_turns])
        chosen = _messages(doc.messages[doc.prompt_turns :])
        rejected = _messages(doc.rejected)
        if not prompt or prompt[-1].get("role") != "user":
            return Drop("prompt_not_user_last", "the prompt does not end with a user turn")
        for name, answer in (("chosen", chosen), ("rejected", rejected)):
            problems = conversation_problems(prompt + answer)
            if problems:
                return Drop(problems[0], f"{name}: {'; '.join(problems)}")
        if chosen == rejected:
            return Drop("identical_pair", "chosen and rejected are the same")
        guard = state.setdefault("guard", MarkupGuard(policy=opts.markup))
        before = guard.hits
        record: dict[str, Any] = {}
        for key, value in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
            record[key] = clean_markup(value, guard)
            if record[key] is None:
                return Drop("markup", f"{key} holds chat markup (markup: drop)")
        columns = ("prompt", "chosen", "rejected")
        dropped = finish_records(self, [record], columns, doc, opts, state, before)
        if dropped is not None:
            return dropped
        self.stats.sources[doc.conversation_kind or "preference"] += 1
        return [record]

    def token_texts(self, record: Record, doc: Document) -> list[str]:
        """Every message's content (prompt, chosen and rejected)."""
        return column_texts(record, ("prompt", "chosen", "rejected"))

    def features(self, state: dict[str, Any]) -> list[dict[str, Any]] | None:
        return record_features(self, state, ("prompt", "chosen", "rejected"), MESSAGE_KEYS)

    def validate(self, record: Record, state: dict[str, Any]) -> list[str]:
        return [p.code for p in validate_preference(record, hygiene=False)]
