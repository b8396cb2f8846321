"""The summary table printed after a run: the account, per format."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from qudata.quality.report import RunReport

__all__ = ["print_summary"]


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
    table = Table(title=f"qudata pack -> {report.output_dir}")
    for column in ("format", "documents", "records", "bytes", "dropped"):
        table.add_column(column, justify="left" if column in ("format", "dropped") else "right")
    for name, stats in report.formats.items():
        table.add_row(
            name,
            f"{stats.documents:,}",
            f"{stats.records:,}",
            f"{stats.bytes:,}",
            _reasons(dict(stats.dropped)),
        )
    console.print(table)
