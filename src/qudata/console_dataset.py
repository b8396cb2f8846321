"""What ``qudata validate OUT_DIR`` prints: a table of the dataset's files, then every
problem on its own line (``file: what``), or all of it as JSON."""

from __future__ import annotations

import click
import orjson
from rich.console import Console
from rich.table import Table

from qudata.quality.validate_dataset import DatasetFile, DatasetValidation

__all__ = ["print_dataset_validation"]


def _rules(item: DatasetFile) -> str:
    if item.rules is None:
        return "-"
    if item.rules.ok:
        return f"{item.rules.records:,} ok"
    return f"{len(item.rules.problems):,} problems"


def _tokens(item: DatasetFile) -> str:
    if item.sequences is None:
        return "-"
    checked, held = item.sequences
    return f"{checked:,} of {held:,} checked"


def _as_json(result: DatasetValidation) -> bytes:
    files = []
    for item in result.files:
        rules = item.rules
        files.append(
            {
                "path": item.path,
                "format": item.format,
                "records": item.records,
                "bytes": item.bytes,
                "ok": item.ok,
                "problems": item.problems,
                "rules": None
                if rules is None
                else {
                    "records": rules.records,
                    "ok": rules.ok,
                    "by_code": rules.by_code(),
                    "problems": [
                        {
                            "line": p.line,
                            "code": p.code,
                            "path": p.path,
                            "message": p.message,
                            "hint": p.hint,
                        }
                        for p in rules.problems
                    ],
                },
                "sequences": None
                if item.sequences is None
                else {"checked": item.sequences[0], "held": item.sequences[1]},
            }
        )
    payload = {
        "dataset": result.root,
        "ok": result.ok,
        "tokenizer": result.tokenizer,
        "template": result.template,
        "problems": result.problems,
        "notes": result.notes,
        "files": files,
    }
    return orjson.dumps(payload, option=orjson.OPT_INDENT_2)


def print_dataset_validation(
    result: DatasetValidation, *, as_json: bool = False, console: Console | None = None
) -> None:
    """The table and the problem lines (or JSON) of a dataset's validation."""
    if as_json:
        click.echo(_as_json(result).decode())
        return
    console = console or Console()
    table = Table(title=f"qudata validate {result.root}")
    for column in ("file", "format", "records", "bytes", "checks", "rules", "tokens"):
        right = column in ("records", "bytes")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for item in result.files:
        table.add_row(
            item.path,
            item.format,
            f"{item.records:,}",
            f"{item.bytes:,}",
            "ok" if not item.problems else f"{len(item.problems)} differ",
            _rules(item),
            _tokens(item),
        )
    console.print(table)
    for note in result.notes:
        click.echo(f"note: {note}")
    for line in result.problems:
        click.echo(line)
    for item in result.files:
        for what in item.problems:
            click.echo(f"{item.path}: {what}")
        if item.rules is not None:
            for p in item.rules.problems:
                where = f"{item.path}:{p.line}" if p.line is not None else item.path
                click.echo(f"{where}: {p.code}: {p.path}: {p.message} (hint: {p.hint})")
    files = len(result.files)
    bad = sum(not f.ok for f in result.files) + bool(result.problems)
    status = "ok" if result.ok else f"{bad:,} with problems"
    click.echo(f"{result.root}: {files:,} files, {status}")
