"""User-supplied templates, rendered in Jinja's immutable sandbox.

Two uses: the prompt templates that turn a plain document into user and
assistant turns, and Hugging Face-style chat templates that render a whole
conversation as one ``text`` (the same environment and globals as
``transformers``' ``apply_chat_template``, so the output is byte-identical).
The sandbox refuses access to Python internals; no loader is set, so a
template cannot read files.

    >>> render_prompt(compile_template("Tell me about {{ title }}."), {"title": "JSON"})
    'Tell me about JSON.'
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from qudata.errors import ConfigError, InputError

__all__ = [
    "compile_chat_template",
    "compile_template",
    "load_template_source",
    "render_prompt",
]


def _environment(*, chat: bool) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if not chat:
        return ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: Any = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def raise_exception(message: str) -> None:
        from jinja2.exceptions import TemplateError

        raise TemplateError(message)

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def load_template_source(value: str) -> str:
    """A template given inline, or by the path of a file holding it."""
    if "{" not in value and "\n" not in value:
        path = Path(value)
        if path.is_file():
            return path.read_text(encoding="utf-8")
        raise ConfigError(f"chat_template: no such file {value!r} (give a path or a template)")
    return value


@lru_cache(maxsize=32)
def compile_template(source: str) -> Any:
    """A prompt template; a syntax error is a :class:`ConfigError`."""
    from jinja2 import TemplateSyntaxError

    try:
        return _environment(chat=False).from_string(source)
    except TemplateSyntaxError as exc:
        raise ConfigError(f"template {source[:40]!r}: line {exc.lineno}: {exc.message}") from None


@lru_cache(maxsize=8)
def compile_chat_template(source: str) -> Any:
    """A Hugging Face-style chat template (``messages``, ``bos_token``, ...)."""
    from jinja2 import TemplateSyntaxError

    try:
        return _environment(chat=True).from_string(source)
    except TemplateSyntaxError as exc:
        raise ConfigError(f"chat_template: line {exc.lineno}: {exc.message}") from None


def render_prompt(template: Any, variables: dict[str, Any]) -> str:
    """Render a prompt template; a runtime error names the template problem."""
    from jinja2 import TemplateError

    try:
        return str(template.render(**variables))
    except TemplateError as exc:
        raise InputError(f"template failed: {exc}", reason="template_error") from None
