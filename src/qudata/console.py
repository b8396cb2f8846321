"""What the command line prints for people: the account, stats tables, validation problems."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click
import orjson
from rich.console import Console
from rich.table import Table

from qudata.account import RunReport

if TYPE_CHECKING:
    from qudata.quality.problems import FileValidation
    from qudata.stats import InputStats

__all__ = ["print_stats", "print_summary", "print_validation"]


def _reasons(dropped: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in sorted(dropped.items())) or "-"


def print_summary(report: RunReport, console: Console | None = None) -> None:
    """Print what was read, accepted, written and dropped (with reasons)."""
    console = console or Console()
    dropped = sum(report.dropped.values())
    console.print(
        f"read {report.read:,} = accepted {report.accepted:,} + dropped {dropped:,}"
        f" ({_reasons(dict(report.dropped))})"
    )
    if report.skipped:
        console.print(f"not read from input folders: {_reasons(dict(report.skipped))}")
    table = Table(title=f"qudata pack -> {report.output_dir}")
    for column in ("format", "documents", "records", "tokens", "bytes", "dropped"):
        table.add_column(column, justify="left" if column in ("format", "dropped") else "right")
    for name, stats in report.formats.items():
        if stats.tokenizer == "none":
            tokens = "-"
        else:
            tokens = f"{stats.tokens:,}" + ("" if stats.tokens_exact else " (estimate)")
        table.add_row(
            name,
            f"{stats.documents:,}",
            f"{stats.records:,}",
            tokens,
            f"{stats.bytes:,}",
            _reasons(dict(stats.dropped)),
        )
    console.print(table)
    holds = "holds" if report.balanced() else "DOES NOT HOLD"
    console.print(f"account: read == accepted + dropped, and per format: {holds}")
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


def print_stats(stats: InputStats, console: Console | None = None) -> None:
    """The ``qudata stats`` table."""
    console = console or Console()
    dups = sum(stats.duplicates.values())
    console.print(
        f"read {stats.read:,}: invalid {stats.invalid:,}, duplicates {dups:,}, "
        f"without a quality score {stats.unscored:,} (kept at every threshold)"
    )
    label = "tokens" + ("" if stats.tokens_exact else " (estimate)")
    table = Table(title=f"what survives (tokenizer: {stats.tokenizer})")
    for column in ("min_quality_score", "documents", label):
        table.add_column(column, justify="right")
    for t in sorted(stats.documents):
        table.add_row(f"{t:.2f}", f"{stats.documents[t]:,}", f"{stats.tokens[t]:,}")
    console.print(table)


def print_validation(results: Sequence[FileValidation], *, as_json: bool = False) -> None:
    """Every problem (line, code, path, message, hint), then a summary by code per file."""
    if as_json:
        payload = [
            {
                "path": r.path,
                "records": r.records,
                "ok": r.ok,
                "by_code": r.by_code(),
                "problems": [
                    {
                        "line": p.line,
                        "code": p.code,
                        "path": p.path,
                        "message": p.message,
                        "hint": p.hint,
                    }
                    for p in r.problems
                ],
            }
            for r in results
        ]
        click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return
    for r in results:
        for p in r.problems:
            where = f"{r.path}:{p.line}" if p.line is not None else r.path
            click.echo(f"{where}: {p.code}: {p.path}: {p.message} (hint: {p.hint})")
        summary = ", ".join(f"{code} {n:,}" for code, n in r.by_code().items())
        status = "ok" if r.ok else f"{len(r.problems):,} problems ({summary})"
        click.echo(f"{r.path}: {r.records:,} records, {status}")
