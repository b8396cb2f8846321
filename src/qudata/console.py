"""What the command line prints for people: the account, stats tables, validation problems."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from qudata.account import FormatStats, RunReport, packing_summary
from qudata.normalize.account import describe

if TYPE_CHECKING:
    from qudata.quality.problems import FileValidation
    from qudata.stats import InputStats

__all__ = [
    "print_stats",
    "print_summary",
    "print_validation",
    "resume_line",
    "summary_lines",
    "validation_json",
]


def _reasons(dropped: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in sorted(dropped.items())) or "-"


def _top(counts: Mapping[str, int], most: int = 5) -> str:
    """The ``most`` largest counters (``name 1,234``), and how many more there are."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{name} {n:,}" for name, n in ranked[:most])
    more = len(ranked) - most
    return shown + (f" and {more:,} more" if more > 0 else "")


def _records(stats: FormatStats) -> str:
    """A format's records; a packed format's rows (what a user loads) of sequences."""
    packing = packing_summary(stats.files)
    if packing is None:
        return f"{stats.records:,}"
    rows = sum(split["rows"] for split in packing.values())
    return f"{rows:,} rows ({stats.records:,} sequences)"


def resume_line(resumed: Mapping[str, int]) -> str:
    """What ``--resume`` took from the killed run and what it computed again."""
    parts = resumed["partitions"]
    if not resumed["taken"]:
        return (
            "resume: no killed run of this job to take up (none left, or its inputs or "
            f"configuration changed): all {parts:,} partitions computed"
        )
    scan, write = resumed["scan"], resumed["write"]
    return (
        f"resume: reused {scan:,} of {parts:,} partitions' reading and {write:,} of "
        f"{parts:,} partitions' writing (their files checked by their digests); computed again: "
        f"{parts - scan:,} readings, {parts - write:,} writings, the dedup step and the commit"
    )


def summary_lines(report: RunReport) -> list[str]:
    """The lines under the table: what --resume did, the warnings, packed formats."""
    lines = []
    if report.resumed is not None:
        lines.append(resume_line(report.resumed))
    if report.warnings:
        total = sum(report.warnings.values())
        lines.append(f"warnings: {total:,} ({_top(report.warnings)}; see manifest.json)")
    for name, stats in report.formats.items():
        if stats.warnings:
            lines.append(f"warnings in {name}: {_top(stats.warnings)}")
        packing = packing_summary(stats.files)
        for split, pack in (packing or {}).items():
            efficiency = pack["packing_efficiency"]
            lines.append(
                f"{name} {split}: {pack['rows']:,} rows of up to {pack['seq_len']:,} tokens "
                f"hold {pack['tokens']:,} tokens"
                + (f" ({efficiency:.1%} full)" if efficiency is not None else "")
            )
    return lines


def print_summary(report: RunReport, console: Console | None = None) -> None:
    """Print what was read, accepted, written and dropped (with reasons), what --resume
    reused, the warnings and notes."""
    console = console or Console()
    dropped = sum(report.dropped.values())
    console.print(
        f"read {report.read:,} = accepted {report.accepted:,} + dropped {dropped:,}"
        f" ({_reasons(dict(report.dropped))})"
    )
    if report.skipped:
        console.print(f"not read from input folders: {_reasons(dict(report.skipped))}")
    if any(report.input_keys.values()):
        keys = describe(report.input_keys)
        console.print(f"input keys: {keys}", markup=False, highlight=False, soft_wrap=True)
    reasoning = [
        f"{name} {stats.events['reasoning_messages']:,} messages"
        + (f", {stats.events['reasoning_tokens']:,} tokens" if stats.tokenizer != "none" else "")
        for name, stats in report.formats.items()
        if stats.events.get("reasoning_messages")
    ]
    if reasoning:
        console.print(f"reasoning_content kept: {'; '.join(reasoning)}")
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
            _records(stats),
            tokens,
            f"{stats.bytes:,}",
            _reasons(dict(stats.dropped)),
        )
    console.print(table)
    holds = "holds" if report.balanced() else "DOES NOT HOLD"
    console.print(f"account: read == accepted + dropped, and per format: {holds}")
    for line in summary_lines(report):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
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
    console.print(
        "tokens: of each kept document's text, as pack counts -f jsonl; a format's "
        "template (chatml's roles), cleaning or drops (empty_text, too_long) make its own "
        "total in pack differ",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def validation_json(result: FileValidation) -> dict[str, Any]:
    """One file's rule check as JSON: records, ok, problems by code, every problem."""
    return {
        "records": result.records,
        "ok": result.ok,
        "by_code": result.by_code(),
        "problems": [
            {"line": p.line, "code": p.code, "path": p.path, "message": p.message, "hint": p.hint}
            for p in result.problems
        ],
    }


def print_validation(results: Sequence[FileValidation], *, as_json: bool = False) -> None:
    """Every problem (line, code, path, message, hint), then a summary by code per file."""
    if as_json:
        payload = [{"path": r.path, **validation_json(r)} for r in results]
        click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        return
    for r in results:
        for p in r.problems:
            where = f"{r.path}:{p.line}" if p.line is not None else r.path
            click.echo(f"{where}: {p.code}: {p.path}: {p.message} (hint: {p.hint})")
        summary = ", ".join(f"{code} {n:,}" for code, n in r.by_code().items())
        status = "ok" if r.ok else f"{len(r.problems):,} problems ({summary})"
        click.echo(f"{r.path}: {r.records:,} records, {status}")
