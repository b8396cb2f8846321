"""KTO: TRL's unpaired preference records, ``{"prompt", "completion", "label"}``.

``prompt`` is the conversation up to its last answer (messages ending with a user or
tool turn), ``completion`` the answer (the trailing assistant message(s)) and
``label`` a boolean: ``true`` a desirable completion, ``false`` an undesirable one.
Records come from KTO data (LLaMA-Factory's ``kto_tag`` / a boolean ``label`` beside
``messages``, TRL's ``prompt``/``completion``/``label``) and, with ``unpair`` (the
default), from preference pairs: the chosen answer labelled ``true`` and the rejected
one ``false``, as TRL's ``unpair_preference_dataset``. Other records are dropped from
this format (``not_kto``). Chat markup is escaped, stripped or dropped as in
preference (``markup``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from qudata.account import Drop
from qudata.models import Document, json_kind
from qudata.normalize.problems import conversation_problems
from qudata.pack.base import Formatter, Record
from qudata.pack.chatml_rules import record_rules
from qudata.pack.markup import MarkupGuard
from qudata.pack.preference import (
    clean_markup,
    column_texts,
    conversation_columns,
    finish_records,
    note_dropped_keys,
    record_features,
)
from qudata.quality.problems import FileRules, FileValidation, Problem, add_hints, make_problem
from qudata.quality.problems import hygiene as string_hygiene
from qudata.sections import Section

__all__ = ["KTOFormatter", "KTOOptions", "KTORules", "validate_kto"]

# the problem codes of a KTO record, with their hints (``answer_not_assistant`` is
# preference's, imported with it)
add_hints(
    {
        "missing_kto_field": 'a KTO record has "prompt" and "completion" (non-empty lists of '
        'messages) and a boolean "label"',
        "kto_prompt_not_user_last": "a KTO prompt ends with a user (or tool) turn",
    }
)


class KTOOptions(Section):
    """``pack.kto``: TRL's unpaired preference records (prompt, completion, label)."""

    include_metadata: bool = Field(
        default=False, description="add the `metadata` object to KTO records"
    )
    markup: Literal["escape", "strip", "drop"] = Field(
        default="escape",
        description="chat markup in any string of a record: `escape`, `strip`, `drop` (as ChatML)",
    )
    unpair: bool = Field(
        default=True,
        description="a chosen/rejected pair becomes two records (label true, then false), "
        "as TRL's `unpair_preference_dataset`; `false`: pairs are dropped (`not_kto`)",
    )


_MESSAGE_KEYS = ("role", "content", "reasoning_content", "name", "tool_calls", "tool_call_id")


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: m[k] for k in _MESSAGE_KEYS if k in m} for m in messages]


def _split(messages: list[dict[str, Any]]) -> int:
    """Where the completion starts: after the last turn that is not the assistant's."""
    start = len(messages)
    while start and messages[start - 1].get("role") == "assistant":
        start -= 1
    return start


def validate_kto(record: Any, *, hygiene: bool = True) -> list[Problem]:
    """The rules of a TRL conversational KTO record: ``prompt`` (ending with a user or
    tool turn), ``completion`` (starting with an assistant message), a boolean ``label``."""
    if not isinstance(record, dict):
        return [make_problem("not_an_object", "$", f"the record is {json_kind(record)}")]
    out = conversation_columns(
        record,
        ("prompt", "completion"),
        missing="missing_kto_field",
        prompt_roles=("user", "tool"),
        prompt_code="kto_prompt_not_user_last",
    )
    if not isinstance(record.get("label"), bool):
        shown = json_kind(record.get("label")) if "label" in record else "missing"
        out.append(make_problem("missing_kto_field", "label", f'"label" is {shown}'))
    out.extend(record_rules(record))
    if hygiene:
        out.extend(string_hygiene(record))
    return out


class KTORules(FileRules):
    """``qudata validate --format kto``: each record's rules."""

    def check(self, record: Any, line: int, result: FileValidation) -> list[Problem]:
        return validate_kto(record)


class KTOFormatter(Formatter[KTOOptions]):
    """``{"prompt", "completion", "label"}`` records (TRL ``KTOTrainer`` datasets).

    Example::

        records = KTOFormatter().format_documents([{"messages": [
            {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}],
            "label": False}])
        # [{"prompt": [{"role": "user", "content": "2+2?"}],
        #   "completion": [{"role": "assistant", "content": "5"}], "label": False}]
    """

    name: ClassVar[str] = "kto"
    extension: ClassVar[str] = ".jsonl"
    card: ClassVar[str | None] = "root"
    options_model: ClassVar[type[KTOOptions]] = KTOOptions
    learns_schema: ClassVar[bool] = True
    reads_kto_labels: ClassVar[bool] = True
    file_rules: ClassVar[type[FileRules] | None] = KTORules

    def format_document(
        self, doc: Document, opts: KTOOptions, state: dict[str, Any]
    ) -> list[Record] | Drop:
        if doc.messages is None:
            return Drop("not_kto", "the record is not a conversation")
        pairs: list[tuple[list[dict[str, Any]], list[dict[str, Any]], bool]] = []
        if doc.desirable is not None and doc.rejected is None:
            start = _split(doc.messages)
            pairs.append((doc.messages[:start], doc.messages[start:], doc.desirable))
        elif doc.rejected is not None and doc.prompt_turns is not None and opts.unpair:
            prompt = doc.messages[: doc.prompt_turns]
            pairs.append((prompt, doc.messages[doc.prompt_turns :], True))
            pairs.append((prompt, doc.rejected, False))
        else:
            return Drop("not_kto", "the record has no KTO label (label / kto_tag)")
        note_dropped_keys(
            self.stats.warnings, [m for _, c, _ in pairs for m in c] + pairs[0][0], _MESSAGE_KEYS
        )
        guard = state.setdefault("guard", MarkupGuard(policy=opts.markup))
        before = guard.hits
        records = []
        for prompt, completion, label in pairs:
            if not prompt or prompt[-1].get("role") not in ("user", "tool"):
                return Drop("prompt_not_user_last", "the prompt does not end with a user turn")
            if not completion:
                return Drop("no_assistant_message", "the conversation has no completion")
            problems = conversation_problems(prompt + completion)
            if problems:
                return Drop(problems[0], "; ".join(problems))
            record: dict[str, Any] = {}
            for key, value in (("prompt", prompt), ("completion", completion)):
                record[key] = clean_markup(_messages(value), guard)
                if record[key] is None:
                    return Drop("markup", f"{key} holds chat markup (markup: drop)")
            record["label"] = label
            records.append(record)
        dropped = finish_records(self, records, ("prompt", "completion"), doc, opts, state, before)
        if dropped is not None:
            return dropped
        self.stats.sources[doc.conversation_kind or "messages"] += 1
        self.stats.events["kto_desirable"] += sum(1 for r in records if r["label"])
        self.stats.events["kto_undesirable"] += sum(1 for r in records if not r["label"])
        return records

    def token_texts(self, record: Record, doc: Document) -> list[str]:
        """Every message's content (prompt and completion)."""
        return column_texts(record, ("prompt", "completion"))

    def features(self, state: dict[str, Any]) -> list[dict[str, Any]] | None:
        label = {"name": "label", "dtype": "bool"}
        return record_features(self, state, ("prompt", "completion"), _MESSAGE_KEYS, (label,))

    def validate(self, record: Record, state: dict[str, Any]) -> list[str]:
        return [p.code for p in validate_kto(record, hygiene=False)]
