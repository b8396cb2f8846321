"""Chat templates as Hugging Face ships them, and messages as their templates expect.

A template is given inline, as the path of a Jinja file, or as the path of a
``tokenizer_config.json``: then its ``chat_template`` key is the template (a string, or
a list of named templates: ``default``, and ``tool_use`` for a conversation with tools,
as ``transformers`` chooses; ``path#name`` picks one by name), or ``chat_template.jinja``
beside it when the key is absent; and its special tokens (``bos_token``, ``eos_token``,
``unk_token``, ``pad_token``) are variables of the template, as ``apply_chat_template``
passes them.

:func:`template_messages` gives a conversation the shape ``transformers``' templates
read: the ``arguments`` of every tool call an object (``{"city": "Paris"}``), not a JSON
string, so that ``tool_call.arguments | tojson`` writes it once, not quoted again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from qudata.errors import ConfigError

__all__ = ["ChatTemplateFile", "load_chat_template", "load_template_source", "template_messages"]

_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")


@dataclass(frozen=True)
class ChatTemplateFile:
    """A chat template: its default source, its named sources and its special tokens."""

    source: str
    named: Mapping[str, str] = field(default_factory=dict)
    tokens: Mapping[str, str] = field(default_factory=dict)

    def for_tools(self, tools: bool) -> str:
        """The source a conversation renders with (``tool_use`` when it has tools)."""
        return self.named.get("tool_use", self.source) if tools else self.source


def load_template_source(value: str) -> str:
    """A template given inline, or by the path of a file holding it (a Jinja file or a
    ``tokenizer_config.json``): its default source."""
    return load_chat_template(value).source


@lru_cache(maxsize=16)
def load_chat_template(value: str) -> ChatTemplateFile:
    """The :class:`ChatTemplateFile` of ``value`` (inline, a file, ``file#name``)."""
    if "{" in value or "\n" in value:
        return ChatTemplateFile(value)
    name = None
    if "#" in value and not Path(value).is_file():
        value, name = value.rsplit("#", 1)
    path = Path(value)
    try:
        if not path.is_file():
            raise ConfigError(f"chat_template: no such file {value!r} (give a path or a template)")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"chat_template: cannot read {value!r}: {exc}") from None
    head = text.lstrip()[:2]
    if not head.startswith("{") or head in ("{%", "{{", "{#"):
        if name is not None:
            raise ConfigError(f"chat_template: {value!r} is one template, it has no {name!r}")
        return ChatTemplateFile(text)
    return _from_config(path, text, name)


def _from_config(path: Path, text: str, name: str | None) -> ChatTemplateFile:
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"chat_template: {path}: not a JSON file: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"chat_template: {path}: expected a JSON object (tokenizer_config)")
    tokens = {k: t for k in _TOKEN_KEYS if (t := _token(config.get(k))) is not None}
    found = config.get("chat_template")
    if found is None and (path.parent / "chat_template.jinja").is_file():
        found = (path.parent / "chat_template.jinja").read_text(encoding="utf-8")
    named: dict[str, str] = {}
    if isinstance(found, list):
        for item in found:
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                named[str(item.get("name"))] = item["template"]
        found = named.get("default")
        if found is None and name is None and len(named) == 1:
            found = next(iter(named.values()))
    if name is not None:
        if name not in named:
            have = ", ".join(sorted(named)) or "none"
            raise ConfigError(f"chat_template: {path}: no template named {name!r} ({have})")
        found = named[name]
    if not isinstance(found, str) or not found:
        raise ConfigError(
            f"chat_template: {path}: no chat_template key (a tokenizer_config.json with a "
            "chat template, or a Jinja file)"
        )
    return ChatTemplateFile(found, named, tokens)


def _token(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def template_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with the ``arguments`` of each tool call as an object where it is a
    JSON string of one (other values, and strings that are not JSON objects, as they are)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        calls = message.get("tool_calls")
        if not isinstance(calls, list) or not calls:
            out.append(dict(message))
            continue
        out.append({**message, "tool_calls": [_call(c) for c in calls]})
    return out


def _call(call: Any) -> Any:
    if not isinstance(call, dict):
        return call
    function = call.get("function")
    if isinstance(function, dict):
        return {**call, "function": _arguments(function)}
    return _arguments(call)


def _arguments(holder: dict[str, Any]) -> dict[str, Any]:
    arguments = holder.get("arguments")
    if isinstance(arguments, str):
        try:
            decoded = json.loads(arguments)
        except ValueError:
            return holder
        if isinstance(decoded, dict):
            return {**holder, "arguments": decoded}
    return holder
