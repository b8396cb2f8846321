"""What a ``qudata`` command line says, as the library takes it.

Options become configuration overrides (``--column``, ``--mix``, ...), with their
choices and defaults read from the configuration models; and the command as
given becomes the dataset card's "made with" line (:func:`command_line`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import typing
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from qudata.config import read_yaml
from qudata.engines import SMALL_INPUT_BYTES, local_lanes
from qudata.errors import ConfigError
from qudata.plan.partitions import partition_bytes
from qudata.quality.tokens.base import TokenCounter
from qudata.quality.tokens.choose import DEFAULT_SPEC, get_token_counter

__all__ = [
    "COLUMN_OPTION",
    "HOW_OPTIONS",
    "ArgvGroup",
    "choices",
    "command_line",
    "config_overrides",
    "default",
    "mix_section",
    "parse_columns",
    "parse_split_option",
    "spare_warm",
    "spare_workers",
    "warm_run",
]


def choices(model: type[BaseModel], field: str) -> click.Choice[Any]:
    """The values a ``Literal`` field of ``model`` takes, as a click choice."""
    return click.Choice(list(typing.get_args(model.model_fields[field].annotation)))


def default(model: type[BaseModel], field: str) -> Any:
    """The default of ``model``'s ``field`` (written once, on the model)."""
    return model.model_fields[field].get_default(call_default_factory=True)


class ArgvGroup(click.Group):
    """Keeps the arguments it was given, for the dataset card's "made with" line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["qudata.argv"] = list(args)
        return super().parse_args(ctx, args)


#: Options that say how or where to run, not what to write: left out of the card's command
#: (with their values), so that any engine and any number of workers write the same card.
HOW_OPTIONS = ("--workers", "--engine", "--ray-address")


def command_line(output_dir: str) -> str:
    """The command as given, with the output folder elided and the options of
    ``HOW_OPTIONS`` and ``--overwrite`` left out (so that the same job writes the same
    bytes into any folder, on any engine)."""
    given = click.get_current_context().find_root().meta.get("qudata.argv", [])
    argv: list[str] = []
    skip = False
    for arg in given:
        if skip:
            skip = False
        elif arg in ("--overwrite", "--resume"):  # how to write, not what: the same card
            continue
        elif arg in HOW_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in HOW_OPTIONS)):
            argv.append(arg)
    for i, arg in enumerate(argv):
        if arg in ("-o", "--output") and i + 1 < len(argv):
            argv[i + 1] = "OUT_DIR"
        elif arg.startswith("--output="):
            argv[i] = "--output=OUT_DIR"
    return "qudata " + shlex.join(argv)


#: ``--column NAME=KEY``, the same for ``pack`` and ``stats``
COLUMN_OPTION = click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="NAME=KEY",
    help="Read qudata's field NAME from the file's KEY (input.columns), e.g. "
    "--column prompt=instruction --column response=output; repeat for several. Names: "
    "prompt, query, response, history, system, messages, tools, chosen, rejected, text, id.",
)


def mix_section(specs: tuple[str, ...], target_tokens: str | None) -> dict[str, Any]:
    """``--mix PATH=WEIGHT`` and ``--target-tokens`` as the ``mix`` section."""
    sources = []
    for spec in specs:
        path, sep, weight = spec.rpartition("=")
        try:
            sources.append({"path": path, "weight": float(weight)})
        except ValueError:
            sep = ""
        if not sep or not path:
            raise click.BadParameter(f"{spec!r}: expected PATH=WEIGHT", param_hint="--mix")
    mix: dict[str, Any] = {"sources": sources} if sources else {}
    if target_tokens is not None:
        mix["target_tokens"] = target_tokens
    return mix


def parse_columns(values: tuple[str, ...]) -> dict[str, str] | None:
    """``--column NAME=KEY`` options as ``input.columns`` (``None``: none given)."""
    out = {}
    for value in values:
        name, sep, key = value.partition("=")
        if not sep or not name.strip() or not key.strip():
            raise click.BadParameter(f"{value!r}: expected NAME=KEY", param_hint="--column")
        out[name.strip()] = key.strip()
    return out or None


def config_overrides(**sections: dict[str, Any]) -> dict[str, Any]:
    """Configuration overrides from options; an option not given overrides nothing."""
    out: dict[str, Any] = {}
    for name, values in sections.items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            out[name] = given
    return out


def parse_split_option(spec: str) -> dict[str, float]:
    """``--split NAME=FRACTION,...`` as ``output.split``."""
    from qudata.export.splits import parse_split

    try:
        return parse_split(spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--split") from exc


def spare_workers(
    inputs: tuple[str, ...], engine: str | None, workers: int | None, cpus: int
) -> int:
    """The worker processes a ``pack`` command line will likely want, guessed from its
    options before the configuration is read: ``--workers`` N gives N - 1, Ray none;
    otherwise the local engine's lanes (:func:`~qudata.engines.local_lanes`) but this
    process's, for local files of known size, or as for a large input (standard input,
    a folder, a glob, a URI). The engine takes what it needs of them
    (:mod:`qudata.engines.spares`)."""
    if engine == "ray":
        return 0
    if workers is not None:
        return workers - 1
    total, partitions = 0, cpus
    if all(os.path.isfile(name) for name in inputs):
        total = sum(os.path.getsize(name) for name in inputs)
        partitions = -(-total // partition_bytes(total))
    else:
        total = SMALL_INPUT_BYTES
    return local_lanes(None, total, partitions, cpus) - 1


def spare_warm(
    config_path: str | None,
    tokenizer: str | None,
    engine: str | None,
    workers: int | None,
    dedup: str | None = None,
) -> tuple[functools.partial[TokenCounter | None], str | None, int | None]:
    """What the command loads before it forks its workers (:func:`warm_run`), and the
    engine and workers the run will likely have: the command line's options, else the
    configuration file's (read as written; a file that cannot be read, or a value of the
    wrong type, is left for the configuration's own checks to report; a pipe or other
    special file is not read here)."""
    sections: dict[str, Any] = {}
    # a regular file only: a pipe (``--config <(...)``) can be read once, by the run
    if config_path is not None and os.path.isfile(config_path):
        with contextlib.suppress(ConfigError):
            sections = read_yaml(Path(config_path))
    quality, run = _section(sections, "quality"), _section(sections, "engine")
    spec = tokenizer or _typed(quality.get("tokenizer"), str) or DEFAULT_SPEC
    threads = _typed(quality.get("token_threads"), int)
    if dedup is None:
        dedup = _typed(_section(sections, "dedup").get("method"), str)
    arrays = not (dedup == "none" and spec.strip().lower() == "none")
    warm = functools.partial(warm_run, spec, threads, arrays)
    if engine is None:
        engine = _typed(run.get("name"), str)
    if workers is None:
        workers = _typed(run.get("workers"), int)
    return warm, engine, workers


def warm_run(spec: str, threads: int | None, arrays: bool) -> TokenCounter | None:
    """The run's token counter, as :mod:`qudata.stages.context` will ask for it, and with
    ``arrays`` numpy (the dedup keys, quicktok's ids and the budget's token ends use it;
    a run without a tokenizer or dedup never imports it)."""
    counter = get_token_counter(spec, threads)
    if arrays:
        import numpy  # noqa: F401

    return counter


def _section(sections: dict[str, Any], name: str) -> dict[str, Any]:
    found = sections.get(name)
    return found if isinstance(found, dict) else {}


def _typed(value: Any, kind: type) -> Any:
    """``value`` if it is a ``kind`` (not a bool), else None."""
    return value if isinstance(value, kind) and not isinstance(value, bool) else None
