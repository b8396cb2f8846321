"""Write ``docs/cli.md`` from the commands' own ``--help`` (a test keeps it in sync).

python docs/make_cli_reference.py
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from qudata.cli import cli

TARGET = Path(__file__).with_name("cli.md")


def render() -> str:
    """The reference: the group's help, then each command's, in name order."""
    runner = CliRunner()
    parts = [
        "# Command-line reference\n",
        "Generated from `--help` by `docs/make_cli_reference.py`.\n",
    ]
    for args in ([], *([name] for name in sorted(cli.commands))):
        result = runner.invoke(cli, [*args, "--help"], prog_name="qudata", terminal_width=100)
        title = " ".join(["qudata", *args])
        parts.append(f"## `{title}`\n\n```\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
