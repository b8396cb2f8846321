"""The base of every typed configuration section, and how one is validated.

A section is a frozen pydantic model whose unknown keys are errors. This module is
the ground floor of the configuration: :mod:`qudata.config` builds the run's
sections on it, and each output format declares its own options model on it beside
its class (``pack/<format>.py``), so neither imports the other::

    >>> class Options(Section):
    ...     width: int = 80
    >>> validate_section(Options, {"width": 100}, prefix="pack.demo").width
    100
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from qudata.errors import ConfigError

__all__ = [
    "Section",
    "describe_errors",
    "merge_options",
    "parse_count",
    "parse_size",
    "validate_section",
]

M = TypeVar("M", bound=BaseModel)


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, defer_build=True)


#: The error type of a whole section's problems, already described (see ``describe_errors``).
SECTION_ERROR = "section_problems"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a model accepts at ``loc`` (the parent of an unknown key)."""
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
    return sorted(getattr(current, "model_fields", {}))


def describe_errors(exc: ValidationError, model: type[BaseModel], prefix: str) -> str:
    """One line per problem: the dotted path, what is wrong, what is allowed."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in (*([prefix] if prefix else []), *loc)) or "(top level)"
        if err["type"] == SECTION_ERROR:
            lines.append(err["msg"])
        elif err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(model, loc[:-1]))
            lines.append(f"unknown key '{path}' (allowed keys: {allowed})")
        elif err["type"] == "value_error":
            message = err["msg"].removeprefix("Value error, ")
            lines.append(message if not loc else f"'{path}': {message}")
        else:
            got = err.get("input")
            shown = f"; got {got!r}" if not isinstance(got, Mapping | list) else ""
            lines.append(f"'{path}': {err['msg']}{shown}")
    return "; ".join(lines)


def validate_section(model: type[M], data: Any, *, prefix: str = "") -> M:
    """Build ``model`` from ``data`` (a mapping) or raise :class:`ConfigError` naming the path."""
    try:
        return model.model_validate(dict(data) if isinstance(data, Mapping) else data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, model, prefix)) from None


def merge_options(
    model: type[M],
    base: M,
    config: Mapping[str, Any] | None,
    options: Mapping[str, Any],
    *,
    prefix: str,
) -> M:
    """Options for one call: keyword arguments override ``config``, which overrides ``base``."""
    if not config and not options:
        return base
    data = base.model_dump()
    data.update(config or {})
    data.update(options)
    return validate_section(model, data, prefix=prefix)


_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
}


def parse_size(value: int | str) -> int:
    """``"256MB"`` -> 256000000; ``"1GiB"`` -> 1073741824; an int is bytes."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Z]*)", value.strip().upper().replace(" ", ""))
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"size {value!r}: expected a number with B, KB, MB, GB, KiB, MiB or GiB")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


_COUNT_UNITS = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def parse_count(value: str) -> int:
    """``"1B"`` -> 1000000000; ``"250M"``, ``"1_000_000"`` and ``"1.5K"`` too."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMBGT]?)", value.strip().upper().replace("_", ""))
    if match is None:
        raise ValueError(f"count {value!r}: expected a number with K, M, B or T")
    return int(float(match.group(1)) * _COUNT_UNITS[match.group(2)])
