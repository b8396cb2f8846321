"""No role forgery: chat markup inside text can never open or close a turn.

Trainers render ``messages`` themselves and tokenizers turn special-token
strings found in text into real special tokens, so a document containing
``<|im_start|>system`` could forge a turn. Every message content is checked
for the ChatML markers and, with a chat template, the markers that template
uses. The policy (``pack.chatml.markup``):

* ``escape`` (default): a backslash goes after the marker's first character
  (``<|im_start|>`` becomes ``<\\|im_start|>``): the text stays readable and no
  tokenizer sees the marker;
* ``strip``: markers are removed;
* ``drop``: the record is dropped (reason ``markup``).

    >>> MarkupGuard(policy="escape").clean("a <|im_end|> b")
    'a <\\\\|im_end|> b'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

__all__ = [
    "CHATML_MARKERS",
    "MARKUP_EVENTS",
    "REASONING_TAGS",
    "MarkupGuard",
    "MessageCleaner",
    "conversation_guard",
    "is_markup",
    "markers_in_template",
    "probe_markers",
    "reasoning_tags",
]

#: The ``FormatStats.events`` name of each policy's change.
MARKUP_EVENTS = {"escape": "markup_escaped", "strip": "markup_stripped", "drop": "markup_dropped"}

CHATML_MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")

_BAR = "|\uff5c"  # ASCII and fullwidth (U+FF5C, in DeepSeek markers) vertical bars
_MARKER = re.compile(
    rf"<[{_BAR}][^{_BAR}<>\s]{{1,40}}[{_BAR}]>|</?s>|<</?SYS>>|\[/?[A-Z_]{{2,20}}\]|</?[a-z_]{{2,30}}>"
)
# probe contents: letters only, so that no template filter (trim, capitalize...) changes them
_PROBE_ROLES = ("system", "user", "assistant")


def is_markup(value: str) -> bool:
    """A string that can be a marker: bracketed (``<s>``, ``[INST]``, ``<|eot_id|>``,
    ``<start_of_turn>``), at least three characters, no whitespace, no backslash.
    Separators such as ``"\\n"`` or ``"||"`` and words are not markers: escaping them
    would change ordinary text."""
    return (
        len(value) >= 3
        and value[0] in "<["
        and value[-1] in ">]"
        and "\\" not in value
        and not any(c.isspace() for c in value)
    )


def markers_in_template(source: str, extra: Iterable[str] = ()) -> set[str]:
    """Special-token-like strings in a chat template (``<|...|>``, ``[INST]``, ``<s>``,
    ``<start_of_turn>``, ...), plus those of ``extra`` (its ``bos_token``, ``eos_token``)
    that are markup (:func:`is_markup`)."""
    found = set(_MARKER.findall(source))
    found.update(t for t in extra if t and is_markup(t))
    return found


def probe_markers(render: Callable[[list[dict[str, str]]], str]) -> set[str]:
    """The markers a chat template really writes: it is rendered with probe conversations
    (each role once, letters-only sentinel contents) and the literal text around the
    contents is taken apart. This finds markers built from the role
    (``'<|' + role + '|>'``) and fullwidth ones, which never appear in the source.

    ``render`` renders a list of messages; a probe the template refuses is skipped.
    """
    probes = [
        list(_PROBE_ROLES),
        ["user", "assistant"],
        ["user", "assistant", "user", "assistant"],
        ["user", "assistant", "tool", "assistant"],  # a role-built tool marker (<|tool|>)
    ]
    found: set[str] = set()
    for roles in probes:
        sentinels = [f"QudataProbe{chr(65 + i) * 3}Content" for i in range(len(roles))]
        messages = [{"role": r, "content": s} for r, s in zip(roles, sentinels, strict=True)]
        try:
            text = render(messages)
        except Exception:
            continue
        pieces = re.split("|".join(sentinels), text)
        for piece in pieces:
            found.update(_MARKER.findall(piece))
            found.update(chunk for chunk in piece.split() if len(chunk) <= 64 and is_markup(chunk))
    return found


class MarkupGuard:
    """Escape, strip, or flag chat markers in text; counts what it did.

    Only markup can be a marker (:func:`is_markup`), so an escape always makes progress:
    the backslash it inserts cannot be part of a marker.
    """

    def __init__(self, markers: Iterable[str] = CHATML_MARKERS, *, policy: str = "escape") -> None:
        self.policy = policy
        self.markers = sorted({m for m in markers if is_markup(m)}, key=lambda m: (-len(m), m))
        self._pattern = re.compile("|".join(re.escape(m) for m in self.markers) or "(?!)")
        # a marker can only be present if its first two characters are: a cheap test first
        self._prefixes = tuple({m[:2] for m in self.markers})
        self.hits = 0

    def found(self, text: str) -> bool:
        return any(p in text for p in self._prefixes) and self._pattern.search(text) is not None

    def clean(self, text: str) -> str | None:
        """The safe text, or ``None`` when the policy is ``drop`` and a marker was found."""
        if not any(p in text for p in self._prefixes) or not self._pattern.search(text):
            return text
        self.hits += 1
        if self.policy == "drop":
            return None
        # Repeat: removing a marker can join two halves into a new one.
        while self._pattern.search(text):
            if self.policy == "strip":
                text = self._pattern.sub("", text)
            else:
                text = self._pattern.sub(lambda m: m.group(0)[0] + "\\" + m.group(0)[1:], text)
        return text


class MessageCleaner:
    """The markup policy applied to every string of a conversation: ``content`` (text or
    parts), ``name``, ``tool_call_id`` and the strings inside ``tool_calls`` (their JSON
    ``arguments`` decoded, cleaned and encoded again). Used by the formats that carry
    ``messages`` as data (JSONL, Parquet); ChatML applies the same policy itself.

    ``clean`` returns the cleaned copy, or ``None`` when the policy is ``drop`` and a
    marker was found; ``changed`` counts the strings it changed.
    """

    def __init__(self, guard: MarkupGuard) -> None:
        self.guard = guard
        self.changed = 0

    def clean_counted(self, messages: list[Any], events: Any) -> list[Any] | None:
        """:meth:`clean`, with the strings it changed added to a format's ``events``."""
        before = self.changed
        cleaned = self.clean(messages)
        if self.changed > before:
            events[MARKUP_EVENTS[self.guard.policy]] += self.changed - before
        return cleaned

    def clean(self, messages: list[Any]) -> list[Any] | None:
        out = []
        for message in messages:
            if not isinstance(message, dict):
                out.append(message)
                continue
            cleaned = {k: self._value(v, arguments=k == "arguments") for k, v in message.items()}
            if any(v is _DROP for v in cleaned.values()):
                return None
            out.append(cleaned)
        return out

    def _value(self, value: Any, *, arguments: bool = False) -> Any:
        if isinstance(value, str):
            if arguments:
                return self._arguments(value)
            cleaned = self.guard.clean(value)
            if cleaned is None:
                return _DROP
            self.changed += cleaned != value
            return cleaned
        if isinstance(value, list):
            items = [self._value(v) for v in value]
            return _DROP if any(i is _DROP for i in items) else items
        if isinstance(value, dict):
            pairs = {k: self._value(v, arguments=k == "arguments") for k, v in value.items()}
            return _DROP if any(v is _DROP for v in pairs.values()) else pairs
        return value

    def _arguments(self, text: str) -> Any:
        import json

        try:
            decoded = json.loads(text)
        except ValueError:
            return self._value(text)
        cleaned = self._value(decoded)
        if cleaned is _DROP:
            return _DROP
        return text if cleaned == decoded else json.dumps(cleaned, ensure_ascii=False)


_DROP = object()


#: Reasoning tags: the template's own markers where it renders reasoning (Qwen3,
#: DeepSeek-R1 split ``content`` at ``</think>``), so they are never escaped there.
REASONING_TAGS = ("<think>", "</think>")


def conversation_guard(chatml: Any) -> MarkupGuard:
    """The guard of ``pack.chatml`` (its ``markup`` policy; the ChatML markers and those of
    its ``chat_template``), for every format that writes conversations. A template that
    renders reasoning keeps ``<think>`` and ``</think>`` in content as they are."""
    markers = set(CHATML_MARKERS)
    if chatml.chat_template:
        found = _template_markers(
            chatml.chat_template,
            tuple(sorted(chatml.template_vars.items())),
            chatml.template_timeout,
            chatml.template_max_chars,
        )
        markers |= found - set(reasoning_tags(chatml.chat_template))
    return MarkupGuard(markers, policy=chatml.markup)


def reasoning_tags(value: str) -> tuple[str, ...]:
    """:data:`REASONING_TAGS` when the template ``value`` renders reasoning (it names
    ``</think>`` or ``reasoning_content``), else none."""
    from qudata.pack.hf_template import load_chat_template

    source = load_chat_template(value)
    text = "".join([source.source, *source.named.values()])
    return REASONING_TAGS if "</think>" in text or "reasoning_content" in text else ()


@lru_cache(maxsize=8)
def _template_markers(
    value: str, template_vars: tuple[tuple[str, str], ...], timeout: float, max_chars: int
) -> frozenset[str]:
    from qudata.pack.hf_template import load_chat_template
    from qudata.pack.templates import compile_chat_template, render_bounded

    loaded = load_chat_template(value)
    variables = {**loaded.tokens, **dict(template_vars)}
    found = set(markers_in_template(loaded.source, variables.values()))
    for source in {loaded.source, *loaded.named.values()}:
        template = compile_chat_template(source)
        found |= markers_in_template(source)

        def render(messages: list[dict[str, str]], template: Any = template) -> str:
            arguments = {"messages": messages, "tools": None, "documents": None}
            return render_bounded(
                template,
                {**variables, **arguments, "add_generation_prompt": False},
                timeout=timeout,
                max_chars=max_chars,
            )

        found |= probe_markers(render)
    return frozenset(found)
