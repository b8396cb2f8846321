"""``qudata validate``: check every record of a file against the rules of its format.

The rules live with each format (its ``Formatter.file_rules``, e.g.
:class:`qudata.pack.chatml_rules.ChatMLRules`); this module reads the file
(:mod:`qudata.quality.validate_files`) and hands every record, or the whole text,
to them. Every format of the registry with rules can be validated: there is no list
of formats here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import replace

from qudata.errors import ConfigError, InputError
from qudata.pack.registry import FORMATTERS
from qudata.quality.problems import FileRules, FileValidation, RuleOptions
from qudata.quality.validate_files import json_records, parquet_records, read_text

__all__ = ["file_rules", "validate_file", "validated_formats"]


def validated_formats() -> list[str]:
    """The formats whose files ``qudata validate`` checks, in the registry's order."""
    return [name for name, cls in FORMATTERS.items() if cls.file_rules is not None]


def file_rules(fmt: str) -> type[FileRules]:
    """The rules of the format ``fmt``, or a :class:`ConfigError` naming the choices."""
    rules = FORMATTERS[fmt].file_rules if fmt in FORMATTERS else None
    if rules is None:
        choices = ", ".join(validated_formats())
        raise ConfigError(f"unknown format {fmt!r} (choose from: {choices})")
    return rules


def _check_regular(path: str) -> None:
    """A FIFO or socket is never opened (it could block forever); a device such as
    ``/dev/zero`` is read within the line limit like a file."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InputError(
            f"cannot open: {exc.strerror or exc}", source=path, reason="unreadable"
        ) from None
    mode = info.st_mode
    if stat.S_ISDIR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO or socket, which could block"
        raise InputError(
            f"{kind}: give a file",
            source=path,
            reason="not_a_regular_file",
        )


def validate_file(
    path: str,
    fmt: str,
    *,
    max_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
    separator: str | None = None,
    headers: bool | None = None,
) -> FileValidation:
    """Check every record of ``path`` against the rules of ``fmt`` (chatml, jsonl, plain, ...).

    ``max_tokens`` and ``count_tokens`` apply to ChatML; ``separator`` (default: the
    format's) and ``headers`` to plain text. Parquet files (``.parquet``) are read row
    by row.
    """
    rules = file_rules(fmt)(RuleOptions(max_tokens, count_tokens, separator, headers))
    _check_regular(path)
    result = FileValidation(path=path, format=fmt)
    if rules.reads == "text":
        if path.endswith(".parquet"):
            raise InputError(
                "Parquet holds records: validate it as chatml or jsonl",
                source=path,
                reason="wrong_format",
            )
        text = read_text(path, result)
        problems, result.records = rules.check_text(text)
        result.problems.extend(problems)
        result.problems.sort(key=lambda p: p.line or 0)
        return result
    if path.endswith(".parquet"):
        records = parquet_records(path, rules.parquet_row)
    else:
        records = json_records(path)
    rules.start(result)
    for line, record, problem in records:
        if problem is not None:
            result.problems.append(problem)
            if problem.code in ("blank_line", "unreadable"):
                continue
        result.records += 1
        if problem is not None:
            continue
        found = rules.check(record, line, result)
        result.problems.extend(replace(p, line=line) for p in found)
    rules.finish(result)
    return result
