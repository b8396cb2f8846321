"""Conversation sources: every shape a chat record arrives in, turned into ``messages``.

Detected per record, in this order (:data:`KINDS`; docs/formats.md's table lists the same):

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
the system turn of a conversation that has none. Content parts keep their ``text``
parts, joined; any other part type is refused (``unsupported_content``).

    >>> detect({"instruction": "Add 2 and 2.", "input": "", "output": "4"})[1]
    [{'role': 'user', 'content': 'Add 2 and 2.'}, {'role': 'assistant', 'content': '4'}]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qudata.columns import Shape
from qudata.tools import ToolError, normalize_tools
from qudata.turns import ROLE_ALIASES, ConversationError, Turns, message_text, normalize_role

__all__ = [
    "CONVERSATION_KEYS",
    "KINDS",
    "PROBLEM_CODES",
    "ROLE_ALIASES",
    "Conversation",
    "ConversationError",
    "Turns",
    "alpaca_prompt",
    "alpaca_turns",
    "conversation_problems",
    "detect",
    "ends_on_user",
    "message_text",
    "normalize_role",
    "read_conversation",
]

#: Every conversation kind, in the order they are detected (then ``document``).
KINDS = (
    "ranking",
    "preference",
    "hh_rlhf",
    "messages",
    "sharegpt",
    "alpaca",
    "prompt_completion",
    "question_answer",
)

#: Keys that make up a conversation; they are not copied into metadata.
CONVERSATION_KEYS = {
    "messages": ("messages", "tools", "functions", "parallel_tool_calls"),
    "sharegpt": ("conversations", "tools", "parallel_tool_calls"),
    "alpaca": ("instruction", "input", "output", "history"),
    "prompt_completion": ("prompt", "completion"),
    "question_answer": ("question", "answer"),
    "ranking": (
        "conversations",
        "messages",
        "instruction",
        "input",
        "history",
        "chosen",
        "rejected",
        "tools",
        "parallel_tool_calls",
    ),
    "preference": ("prompt", "chosen", "rejected", "tools", "parallel_tool_calls"),
    "hh_rlhf": ("chosen", "rejected"),
}


@dataclass
class Conversation:
    """A detected conversation: its kind, messages and what comes with them.

    A preference record holds its chosen conversation in ``messages`` (the prompt is
    the first ``prompt_turns`` messages) and the rejected answer in ``rejected``.
    """

    kind: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    parallel_tool_calls: bool | None = None
    rejected: list[dict[str, Any]] | None = None
    prompt_turns: int | None = None
    keys: set[str] = field(default_factory=set)


#: Every code :func:`conversation_problems` returns (``qudata validate`` reports each too).
PROBLEM_CODES = (
    "empty_conversation",
    "unknown_role",
    "empty_content",
    "system_not_first",
    "broken_alternation",
    "no_assistant_message",
    "ends_on_user",
)


def ends_on_user(doc: Any) -> bool:
    """A conversation document whose last turn is a user turn (nothing to learn from it
    as supervised data: it is dropped as ``ends_on_user``)."""
    messages = getattr(doc, "messages", None)
    return isinstance(messages, list) and bool(messages) and messages[-1].get("role") == "user"


def _turn(role: str, content: Any) -> dict[str, Any]:
    return {"role": role, "content": content}


def alpaca_turns(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``history`` pairs, then the instruction (+ input) and the output."""
    out: list[dict[str, Any]] = []
    history = row.get("history") or []
    if not isinstance(history, list) or not all(
        isinstance(p, list | tuple) and len(p) == 2 for p in history
    ):
        raise ConversationError("field 'history' must be a list of [prompt, response] pairs")
    for prompt, response in history:
        out += [_turn("user", prompt), _turn("assistant", response)]
    out.append(_turn("user", alpaca_prompt(row)))
    if "output" in row:
        out.append(_turn("assistant", row.get("output")))
    return out


def alpaca_prompt(row: Mapping[str, Any]) -> str:
    prompt = str(row.get("instruction") or "")
    extra = row.get("input")
    if extra:
        prompt = f"{prompt}\n\n{extra}" if prompt else str(extra)
    return prompt


def _prompt_completion(row: Mapping[str, Any], turns: Turns) -> list[dict[str, Any]]:
    """Strings (a user and an assistant turn) or, as TRL's conversational
    prompt-completion data, lists of messages."""
    prompt, completion = row.get("prompt"), row.get("completion")
    return (
        turns.read(prompt, "prompt") if isinstance(prompt, list) else [_turn("user", prompt)]
    ) + (
        turns.read(completion, "completion")
        if isinstance(completion, list)
        else [_turn("assistant", completion)]
    )


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
        messages.insert(0, _turn("system", system))
        if conversation.prompt_turns is not None:
            conversation.prompt_turns += 1
        conversation.keys.add("system")
    return conversation


def read_conversation(row: Mapping[str, Any], shape: Shape | None = None) -> Conversation | None:
    """The conversation in ``row`` (its keys already renamed by ``shape.apply``), or
    ``None`` for a plain document. Raises :class:`ConversationError`."""
    from qudata.preference_sources import read_preference

    turns = Turns(shape)
    conversation: Conversation | None
    if row.get("chosen") is not None and row.get("rejected") is not None:
        conversation = read_preference(row, turns)
    elif row.get("messages") is not None:
        conversation = Conversation("messages", turns.read(row["messages"], "messages"))
    elif row.get("conversations") is not None:
        conversation = Conversation("sharegpt", turns.read(row["conversations"], "conversations"))
    elif "instruction" in row and "output" in row:
        conversation = Conversation("alpaca", alpaca_turns(row))
    elif "prompt" in row and "completion" in row:
        conversation = Conversation("prompt_completion", _prompt_completion(row, turns))
    elif "question" in row and "answer" in row:
        conversation = Conversation(
            "question_answer",
            [_turn("user", row.get("question")), _turn("assistant", row.get("answer"))],
        )
    else:
        return None
    conversation.keys.update(CONVERSATION_KEYS[conversation.kind])
    if conversation.kind in ("messages", "sharegpt", "ranking", "preference"):
        try:
            given = row.get("tools") if row.get("tools") is not None else row.get("functions")
            conversation.tools = normalize_tools(given)
        except ToolError as exc:
            raise ConversationError(str(exc), exc.reason) from None
        parallel = row.get("parallel_tool_calls")
        if parallel is not None and not isinstance(parallel, bool):
            raise ConversationError("field 'parallel_tool_calls' must be true or false")
        conversation.parallel_tool_calls = parallel
    return _with_system(conversation, row)


def detect(row: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """``(kind, messages)`` for a conversation record, ``None`` for a plain document."""
    conversation = read_conversation(row)
    return None if conversation is None else (conversation.kind, conversation.messages)


def conversation_problems(messages: list[dict[str, Any]]) -> list[str]:
    """Codes of what makes ``messages`` unusable for training (empty list: fine).

    ``empty_conversation``, ``unknown_role``, ``empty_content`` (no text, unless an
    assistant message carries ``tool_calls``), ``system_not_first``,
    ``broken_alternation`` (after the system turn, user and assistant take turns;
    tool results follow an assistant message with ``tool_calls``),
    ``no_assistant_message``, ``ends_on_user`` (nothing answers the last user turn:
    a preference prompt, say; training on it would teach the model to stop there).
    """
    if not messages:
        return ["empty_conversation"]
    problems: list[str] = []
    roles = [m.get("role") for m in messages]
    if any(r not in ("system", "user", "assistant", "tool") for r in roles):
        problems.append("unknown_role")
    for m in messages:
        content = m.get("content")
        if not (isinstance(content, str) and content.strip()) and not (
            m.get("role") == "assistant" and m.get("tool_calls") and content in (None, "")
        ):
            problems.append("empty_content")
            break
    if "system" in roles[1:]:
        problems.append("system_not_first")
    if _broken_alternation([r for r in roles if r != "system"], messages):
        problems.append("broken_alternation")
    if "assistant" not in roles:
        problems.append("no_assistant_message")
    elif roles[-1] == "user":
        problems.append("ends_on_user")
    return problems


def _broken_alternation(roles: list[Any], messages: list[dict[str, Any]]) -> bool:
    turns = [m for m in messages if m.get("role") != "system"]
    previous = None
    calls_open = False
    for role, message in zip(roles, turns, strict=True):
        if role == "tool":
            if not calls_open:
                return True
        elif role == "user":
            if previous not in (None, "assistant", "tool"):
                return True
            calls_open = False
        elif role == "assistant":
            if previous not in ("user", "tool"):
                return True
            calls_open = bool(message.get("tool_calls"))
        previous = role
    return False
