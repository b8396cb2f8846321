"""User-supplied templates, rendered in Jinja's immutable sandbox, with bounds.

Two uses: the prompt templates that turn a plain document into user and
assistant turns, and Hugging Face-style chat templates that render a whole
conversation as one ``text`` (the same environment and globals as
``transformers``' ``apply_chat_template``, so the output is byte-identical).
The sandbox refuses access to Python internals; no loader is set, so a
template cannot read files (``include`` fails).

Every rendering is bounded (``pack.chatml.template_timeout``, default 5 s, and
``pack.chatml.template_max_chars``, default 1,000,000 characters). The checks
live inside the template's own code, so they work in any thread (no
``SIGALRM``, which only works in the main thread, and no second thread):

* the deadline is checked at every loop iteration (each ``for`` loop's
  sequence is wrapped), at every call (macros, methods, ``range``) and at
  every output chunk;
* an operator that would build a huge value is refused before it runs:
  ``**`` with a huge result, ``*`` and ``+`` of strings or lists, ``~``,
  ``%`` and ``format`` with a huge field width, ``center``/``indent`` with a
  huge width; any string a call or filter returns is measured;
* the output is measured as it is produced.

An overrun, and any runtime error of the template (``1/0``, ``include``,
recursion), is an :class:`~qudata.errors.InputError` with reason
``template_error``: the record is dropped, the run goes on.

    >>> render_prompt(compile_template("Tell me about {{ title }}."), {"title": "JSON"})
    'Tell me about JSON.'
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any

from qudata.errors import ConfigError, InputError
from qudata.pack.hf_template import load_template_source

__all__ = [
    "DEFAULT_MAX_CHARS",
    "DEFAULT_TIMEOUT",
    "TemplateLimitError",
    "compile_chat_template",
    "compile_template",
    "load_template_source",
    "marks_generation",
    "render_bounded",
    "render_prompt",
    "render_tracked",
]

#: Seconds one rendering may take (``pack.chatml.template_timeout``).
DEFAULT_TIMEOUT = 5.0
#: Characters one rendering may produce (``pack.chatml.template_max_chars``).
DEFAULT_MAX_CHARS = 1_000_000

_WIDE_FIELD = re.compile(r"\d{7,}")  # a format width or precision of a million or more


class TemplateLimitError(Exception):
    """A template exceeded its time or size limit (internal: becomes ``template_error``)."""


class _Limits(threading.local):
    deadline = float("inf")
    max_chars = DEFAULT_MAX_CHARS
    size = 0  # characters produced so far by the rendering in progress
    spans: list[tuple[int, int]] | None = None  # its {% generation %} blocks, when tracked


_LIMITS = _Limits()
_GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")


def marks_generation(source: str) -> bool:
    """Whether a chat template marks assistant spans with ``{% generation %}``."""
    return _GENERATION.search(source) is not None


def _generation_extension() -> Any:
    """``{% generation %}...{% endgeneration %}``, as ``transformers``' ``AssistantTracker``:
    the block renders its body unchanged and, when tracked, records where that body is
    in the output (characters from the start)."""
    from jinja2 import nodes
    from jinja2.ext import Extension

    class Generation(Extension):
        tags = {"generation"}  # noqa: RUF012 (jinja2 declares it a set)

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            call = self.call_method("_generation_support")
            return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

        def _generation_support(self, caller: Any) -> str:
            text = str(caller())
            if _LIMITS.spans is not None:
                _LIMITS.spans.append((_LIMITS.size, _LIMITS.size + len(text)))
            return text

    return Generation


def _tick() -> None:
    if time.monotonic() > _LIMITS.deadline:
        raise TemplateLimitError("the template ran out of time (template_timeout)")


def _sized(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple) and len(value) > _LIMITS.max_chars:
        raise TemplateLimitError(
            f"the template built a value of {len(value):,} items > {_LIMITS.max_chars:,}"
            " (template_max_chars)"
        )
    return value


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple) else 0


def _bounded_filter(function: Any, name: str) -> Any:
    passes = hasattr(function, "jinja_pass_arg")  # @pass_context and friends: one more arg

    def bounded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        value, rest = (args[1:2], args[2:]) if passes else (args[:1], args[1:])
        if name == "join" and value and not hasattr(value[0], "__len__"):
            value = (list(value[0]),)  # measured before joining
            args = (*args[:1], *value, *rest) if passes else (*value, *rest)
        if name in ("center", "indent"):
            for arg in (*rest, *kwargs.values()):
                if isinstance(arg, int) and arg > _LIMITS.max_chars:
                    raise TemplateLimitError(f"a width of {arg:,} is too large")
        elif name == "format" and value and isinstance(value[0], str):
            _check_format(value[0])
        elif name in ("replace", "join") and value:
            _check_growth(name, value[0], [*rest, *kwargs.values()])
        return _sized(function(*args, **kwargs))

    if passes:
        bounded.jinja_pass_arg = function.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


def _check_growth(method: str, subject: Any, args: list[Any]) -> None:
    """Refuse ``replace``, ``join`` and ``expandtabs`` whose result would be over the
    limit, computed before they allocate it (``'x' * 999 | replace('', 'y' * 999999)``)."""
    limit = _LIMITS.max_chars
    size = 0
    if method == "replace" and isinstance(subject, str) and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
            size = len(subject) + subject.count(old) * (len(new) - len(old))
    elif method == "join" and args and isinstance(subject, str | list | tuple):
        glue, items = (args[0], subject) if isinstance(args[0], str) else (subject, args[0])
        if isinstance(glue, str) and hasattr(items, "__len__"):
            size = len(glue) * max(0, len(items) - 1)
    elif method == "expandtabs" and isinstance(subject, str) and args:
        tab = args[0]
        size = len(subject) + subject.count("\t") * tab if isinstance(tab, int) else 0
    if size > limit:
        raise TemplateLimitError(f"{method} would build {size:,} characters > {limit:,}")


def _check_format(text: str) -> None:
    if ("%" in text or "{" in text) and _WIDE_FIELD.search(text):
        raise TemplateLimitError("a format field width of a million or more")


def _loop(context: Any, sequence: Any) -> Iterator[Any]:
    """Every ``for`` loop iterates through this: the deadline is checked per item."""
    from jinja2.runtime import Undefined

    if isinstance(sequence, Undefined):
        yield from sequence
        return
    for item in sequence:
        _tick()
        yield item


def _environment(*, chat: bool) -> Any:
    from jinja2 import nodes, pass_context
    from jinja2.compiler import CodeGenerator
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedCodeGenerator(CodeGenerator):
        def visit_Concat(self, node: Any, frame: Any) -> None:
            self.write("environment.bounded_concat((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class BoundedEnvironment(ImmutableSandboxedEnvironment):
        code_generator_class = BoundedCodeGenerator
        intercepted_binops = frozenset(["*", "**", "+", "%"])

        def _parse(self, source: str, name: Any, filename: Any) -> Any:
            tree = super()._parse(source, name, filename)
            for loop in tree.find_all(nodes.For):
                loop.iter = nodes.Filter(loop.iter, "qudata_loop", [], [], None, None)
            return tree

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _tick()
            limit = _LIMITS.max_chars
            if operator == "**" and isinstance(left, int) and isinstance(right, int):
                if right > 0 and abs(left) > 1 and right * abs(left).bit_length() > limit * 4:
                    raise TemplateLimitError(f"{left} ** {right} is too large")
            elif operator == "*":
                n = right if isinstance(right, int) else left if isinstance(left, int) else 0
                if n > 0 and max(_length(left), _length(right)) * n > limit:
                    raise TemplateLimitError("a repetition larger than template_max_chars")
            elif operator == "+" and _length(left) + _length(right) > limit:
                raise TemplateLimitError("a concatenation larger than template_max_chars")
            elif operator == "%" and isinstance(left, str):
                _check_format(left)
            return _sized(super().call_binop(context, operator, left, right))

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            _tick()
            subject = getattr(__obj, "__self__", None)
            if isinstance(subject, str | bytes | list):
                # 'x'.ljust(10**9), 'x'.zfill(...): refused before they allocate
                for arg in (*args, *kwargs.values()):
                    if isinstance(arg, int) and arg > _LIMITS.max_chars:
                        raise TemplateLimitError(f"an argument of {arg:,} is too large")
                method = getattr(__obj, "__name__", "")
                if method == "join" and args and not hasattr(args[0], "__len__"):
                    args = (list(args[0]), *args[1:])  # measured before joining
                if method in ("replace", "join", "expandtabs"):
                    _check_growth(method, subject, [*args, *kwargs.values()])
            return _sized(super().call(__context, __obj, *args, **kwargs))

        def wrap_str_format(self, value: Any) -> Any:
            if isinstance(getattr(value, "__self__", None), str):
                _check_format(value.__self__)
            return super().wrap_str_format(value)

        def bounded_concat(self, parts: Iterable[Any]) -> str:
            _tick()
            texts = [str(p) for p in parts]
            if sum(map(len, texts)) > _LIMITS.max_chars:
                raise TemplateLimitError("a concatenation larger than template_max_chars")
            return "".join(texts)

    if not chat:
        env = BoundedEnvironment(autoescape=False, keep_trailing_newline=True)
    else:
        env = BoundedEnvironment(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.loopcontrols", _generation_extension()],
        )
    for name, function in list(env.filters.items()):
        env.filters[name] = _bounded_filter(function, name)
    env.filters["qudata_loop"] = pass_context(_loop)
    if not chat:
        return env

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

    env.filters["tojson"] = _bounded_filter(tojson, "tojson")
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def _compile(source: str, *, chat: bool, what: str) -> Any:
    from jinja2 import TemplateSyntaxError

    try:
        return _environment(chat=chat).from_string(source)
    except TemplateSyntaxError as exc:
        raise ConfigError(f"{what}: line {exc.lineno}: {exc.message}") from None
    except (RecursionError, MemoryError, ValueError, TypeError) as exc:  # a pathological source
        raise ConfigError(f"{what}: cannot be compiled ({type(exc).__name__})") from None


@lru_cache(maxsize=32)
def compile_template(source: str) -> Any:
    """A prompt template; a syntax error is a :class:`ConfigError`."""
    return _compile(source, chat=False, what=f"template {source[:40]!r}")


@lru_cache(maxsize=8)
def compile_chat_template(source: str) -> Any:
    """A Hugging Face-style chat template (``messages``, ``bos_token``, ...)."""
    return _compile(source, chat=True, what="chat_template")


def render_bounded(
    template: Any,
    variables: dict[str, Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> str:
    """Render within ``timeout`` seconds and ``max_chars`` characters of output.

    Any failure (an overrun, ``raise_exception``, a runtime error of the template)
    is an :class:`InputError` with reason ``template_error``.
    """
    return _render(template, variables, timeout, max_chars, None)


def render_tracked(
    template: Any,
    variables: dict[str, Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> tuple[str, list[tuple[int, int]]]:
    """:func:`render_bounded`, and the character ranges of its ``{% generation %}``
    blocks (``transformers``' ``generation_indices``)."""
    spans: list[tuple[int, int]] = []
    return _render(template, variables, timeout, max_chars, spans), spans


def _render(
    template: Any,
    variables: dict[str, Any],
    timeout: float,
    max_chars: int,
    spans: list[tuple[int, int]] | None,
) -> str:
    saved = (_LIMITS.deadline, _LIMITS.max_chars, _LIMITS.size, _LIMITS.spans)
    _LIMITS.deadline, _LIMITS.max_chars = time.monotonic() + timeout, max_chars
    _LIMITS.size, _LIMITS.spans = 0, spans
    try:
        chunks: list[str] = []
        for chunk in template.generate(**variables):
            _LIMITS.size += len(chunk)
            if _LIMITS.size > max_chars:
                raise TemplateLimitError(
                    f"the output exceeds {max_chars:,} characters (template_max_chars)"
                )
            _tick()
            chunks.append(chunk)
        return "".join(chunks)
    except RecursionError:
        raise InputError("template failed: too deep recursion", reason="template_error") from None
    except MemoryError:
        raise InputError("template failed: out of memory", reason="template_error") from None
    except Exception as exc:
        message = str(exc) or type(exc).__name__
        raise InputError(f"template failed: {message}", reason="template_error") from None
    finally:
        _LIMITS.deadline, _LIMITS.max_chars, _LIMITS.size, _LIMITS.spans = saved


def render_prompt(
    template: Any,
    variables: dict[str, Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> str:
    """Render a prompt template; a runtime error names the template problem."""
    return render_bounded(template, variables, timeout=timeout, max_chars=max_chars)
