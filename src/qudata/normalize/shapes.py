"""The table of input shapes: every shape a chat record arrives in, turned into ``messages``.

Detected per record, in the order of :data:`SHAPES` (then a plain text document,
:mod:`qudata.normalize.document`; docs/formats.md's table lists the same):

=====================  =========================================================
kind                   input keys
=====================  =========================================================
``ranking``            ``conversations`` / ``messages`` or ``instruction``, with
                       ``chosen`` and ``rejected`` (LLaMA-Factory ranking data)
``preference``         ``prompt`` (string or messages), ``chosen``, ``rejected``
                       (TRL), or ``chosen``/``rejected`` conversations sharing a prefix
``hh_rlhf``            ``chosen``/``rejected`` transcripts ``"\\n\\nHuman: ...
                       \\n\\nAssistant: ..."`` (Anthropic HH)
``messages``           ``messages``: OpenAI / TRL ``role``, ``content`` (+ ``name``,
                       ``weight``, ``tool_calls``, ``tool_call_id``), ``tools``
``sharegpt``           ``conversations``: ``from`` / ``value`` turns (+ ``system``,
                       ``tools``)
``alpaca``             ``instruction``, ``output`` (+ ``input``, ``system``,
                       ``history``)
``prompt_completion``  ``prompt``, ``completion`` (strings, or TRL's lists of
                       messages)
``question_answer``    ``question``, ``answer``
=====================  =========================================================

Roles are normalised to ``system``, ``user``, ``assistant`` and ``tool``
(``developer`` is ``system``); an unknown role is kept as written, so the ChatML
checks drop the record with a code instead of guessing. A top-level ``system`` becomes
the system turn of a conversation that has none. Content parts are read by
:mod:`qudata.normalize.parts` (text, reasoning, tool calls, media references).

    >>> detect({"instruction": "Add 2 and 2.", "input": "", "output": "4"})[1]
    [{'role': 'user', 'content': 'Add 2 and 2.'}, {'role': 'assistant', 'content': '4'}]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qudata.normalize import (
    alpaca,
    messages,
    preference,
    prompt_completion,
    question_answer,
    sharegpt,
)
from qudata.normalize.columns import Shape
from qudata.normalize.conversation import Conversation, InputShape, turn
from qudata.normalize.tools import ToolError, normalize_tools
from qudata.normalize.turns import ConversationError, Turns

__all__ = ["CONVERSATION_KEYS", "KINDS", "SHAPES", "detect", "read_conversation"]

#: The input shapes, in the order they are tried: the first whose ``matches`` is true
#: reads the record.
SHAPES: tuple[InputShape, ...] = (
    preference.SHAPE,
    messages.SHAPE,
    sharegpt.SHAPE,
    alpaca.SHAPE,
    prompt_completion.SHAPE,
    question_answer.SHAPE,
)

#: Keys that make up a conversation, per kind; they are not copied into metadata.
CONVERSATION_KEYS: dict[str, tuple[str, ...]] = {
    kind: keys for shape in SHAPES for kind, keys in shape.kinds.items()
}
#: Every conversation kind, in the order they are detected (then ``document``).
KINDS = tuple(CONVERSATION_KEYS)


def _with_system(conversation: Conversation, row: Mapping[str, Any]) -> Conversation:
    """A top-level ``system`` becomes the system turn of a conversation without one (a
    record with both keeps its own; the top-level one stays in metadata)."""
    system = row.get("system")
    messages = conversation.messages
    if (
        isinstance(system, str)
        and system.strip()
        and not any(m.get("role") == "system" for m in messages)
    ):
        messages.insert(0, turn("system", system))
        if conversation.prompt_turns is not None:
            conversation.prompt_turns += 1
        conversation.keys.add("system")
    return conversation


def _with_tools(conversation: Conversation, row: Mapping[str, Any]) -> None:
    """The record's tool schemas (``tools``, or legacy ``functions``) and
    ``parallel_tool_calls``."""
    try:
        given = row.get("tools") if row.get("tools") is not None else row.get("functions")
        conversation.tools = normalize_tools(given)
    except ToolError as exc:
        raise ConversationError(str(exc), exc.reason) from None
    parallel = row.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise ConversationError("field 'parallel_tool_calls' must be true or false")
    conversation.parallel_tool_calls = parallel


def read_conversation(row: Mapping[str, Any], shape: Shape | None = None) -> Conversation | None:
    """The conversation in ``row`` (its keys already renamed by ``shape.apply``), or
    ``None`` for a plain document. Raises :class:`ConversationError`."""
    turns = Turns(shape)
    for candidate in SHAPES:
        if candidate.matches(row):
            conversation = candidate.read(row, turns)
            break
    else:
        return None
    keys = CONVERSATION_KEYS[conversation.kind]
    conversation.keys.update(keys)
    conversation.media = turns.media or None
    if "tools" in keys:
        _with_tools(conversation, row)
    return _with_system(conversation, row)


def detect(row: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """``(kind, messages)`` for a conversation record, ``None`` for a plain document."""
    conversation = read_conversation(row)
    return None if conversation is None else (conversation.kind, conversation.messages)
