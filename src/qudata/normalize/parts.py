"""Content given as parts (OpenAI, TRL, LLaMA-Factory v1), read into one message.

=====================================  ===========================================
part                                   becomes
=====================================  ===========================================
``text`` (``text`` or ``value``)       the content (parts joined as written)
``reasoning`` / ``thinking``           ``reasoning_content`` of the message
``tool_call`` (``value``: JSON)        one of the message's ``tool_calls``
``image``/``image_url``/``input_image``  an ``<image>`` placeholder in the content,
``video``/``video_url``,               ``<video>``, ``<audio>``; the reference
``audio``/``audio_url``                (path or URL) goes to the record's
                                       ``images``/``videos``/``audios``
=====================================  ===========================================

Any other part is refused (``unsupported_content``) with its type and keys named; so
is a media part that carries the bytes themselves (``input_audio``, ``data:`` URLs):
qudata carries references, not media.

    >>> read_parts([{"type": "image"}, {"type": "text", "value": "What is it?"}]).text
    '<image>What is it?'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qudata.normalize.errors import ConversationError

__all__ = ["MEDIA_KINDS", "PLACEHOLDERS", "Parts", "read_parts"]

#: Media kinds: the record key holding the references, and the placeholder in text.
MEDIA_KINDS = ("images", "videos", "audios")
PLACEHOLDERS = {"images": "<image>", "videos": "<video>", "audios": "<audio>"}
_MEDIA_TYPES = {
    "image": "images",
    "image_url": "images",
    "input_image": "images",
    "video": "videos",
    "video_url": "videos",
    "audio": "audios",
    "audio_url": "audios",
}
_REFERENCE_KEYS = ("image_url", "video_url", "audio_url", "image", "video", "audio", "url",
                   "path", "value")  # fmt: skip


@dataclass
class Parts:
    """What a list of parts holds: text, reasoning, tool calls, media references."""

    text: str = ""
    reasoning: list[str] = field(default_factory=list)
    calls: list[Any] = field(default_factory=list)
    media: dict[str, list[str]] = field(default_factory=dict)
    has_text: bool = False


def _describe(part: Any) -> str:
    if not isinstance(part, Mapping):
        return f"content part of type {type(part).__name__!r}"
    keys = ", ".join(sorted(map(str, part))) or "none"
    return f"content part of type {part.get('type')!r} (keys: {keys})"


def _string(part: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = part.get(key)
        if isinstance(value, str):
            return value
    return None


def _reference(part: Mapping[str, Any]) -> str | None:
    """The path or URL of a media part (``None``: a placeholder without one, as TRL's
    ``{"type": "image"}`` beside a top-level ``images`` list)."""
    for key in _REFERENCE_KEYS:
        value = part.get(key)
        if isinstance(value, Mapping):
            value = value.get("url")
        if isinstance(value, str):
            if value.startswith("data:"):
                raise ConversationError(
                    f"{_describe(part)} holds the media bytes (a data: URL); only references "
                    "(paths or URLs) are carried",
                    "unsupported_content",
                )
            return value
        if value is not None:
            raise ConversationError(
                f"{_describe(part)}: '{key}' must be a path or URL string", "unsupported_content"
            )
    return None


def read_parts(value: list[Any]) -> Parts:
    """Read a message's content parts; raises :class:`ConversationError` naming a part
    it cannot read by its type and keys."""
    out = Parts()
    texts: list[str] = []
    for part in value:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if not isinstance(part, Mapping) or not isinstance(kind, str):
            raise ConversationError(
                f"{_describe(part)} (parts need a 'type')", "unsupported_content"
            )
        if kind == "text":
            text = _string(part, "text", "value")
            if text is None:
                raise ConversationError(
                    f"{_describe(part)}: a text part needs a string 'text' or 'value'",
                    "unsupported_content",
                )
            texts.append(text)
            out.has_text = True
        elif kind in ("reasoning", "thinking"):
            text = _string(part, "value", "text", "reasoning", "thinking")
            if text is None:
                raise ConversationError(
                    f"{_describe(part)}: a reasoning part needs a string 'value'",
                    "unsupported_content",
                )
            out.reasoning.append(text)
        elif kind == "tool_call":
            call = part.get("value", part.get("tool_call"))
            try:
                call = json.loads(call) if isinstance(call, str) else call
            except ValueError:
                raise ConversationError(
                    f"{_describe(part)}: 'value' is not valid JSON", "bad_tool_call"
                ) from None
            out.calls.extend(call if isinstance(call, list) else [call])
        elif kind in _MEDIA_TYPES:
            media = _MEDIA_TYPES[kind]
            texts.append(PLACEHOLDERS[media])
            reference = _reference(part)
            if reference is not None:
                out.media.setdefault(media, []).append(reference)
        else:
            raise ConversationError(
                f"{_describe(part)} (readable parts: text, reasoning, tool_call, image, "
                "video, audio and their _url forms)",
                "unsupported_content",
            )
    out.text = "".join(texts)
    return out
