"""How a ``qudata`` command ends: one ``Error: ...`` line and an exit code, never a traceback.

2 for usage, configuration and output-folder errors, 1 for bad data under
``on_error: fail`` and system errors, 128 + the signal for an interrupt.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from qudata.errors import ConfigError, OutputError, QudataError, WriteError

__all__ = ["Interrupted", "check_output_parent", "clean_end", "fail", "on_signal"]


def fail(exc: QudataError) -> None:
    """Print ``exc`` as one ``Error:`` line and exit with its code."""
    click.echo(f"Error: {exc}", err=True)
    sys.exit(exc.exit_code)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (exit 128 + the signal number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def on_signal(signum: int, frame: Any) -> None:
    """The SIGTERM handler: raise :class:`Interrupted`, so the run cleans up as for Ctrl-C."""
    raise Interrupted(signum)


@contextmanager
def clean_end(output_dir: str | None = None) -> Iterator[None]:
    """One line for every way a command can fail: a qudata error (its exit code), a
    system error (exit 1), an interrupt (130 for Ctrl-C, 143 for SIGTERM). The library
    removes its staging folder and puts no half dataset in place before this prints."""
    try:
        yield
    except QudataError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        for held in (signal.SIGINT, signal.SIGTERM):  # a second signal: no traceback
            signal.signal(held, signal.SIG_IGN)
        done = "nothing was published" if output_dir is not None else "stopped"
        published = getattr(exc, "published", None)
        if published is not None:
            done = f"the complete, verified dataset was published to {published}"
        click.echo(f"Interrupted: {done}", err=True)
        sys.exit(128 + getattr(exc, "signum", signal.SIGINT))
    except OSError as exc:
        where = f" {_short(output_dir)}" if output_dir is not None else ""
        path = f" ({_short(str(exc.filename))})" if exc.filename else ""
        what = exc.strerror or str(exc) or type(exc).__name__
        if exc.errno == errno.ENOSPC or _SHORT_WRITE.fullmatch(what):  # numpy: no errno
            what = os.strerror(errno.ENOSPC)  # No space left on device
            if not path and output_dir is not None:
                path = f" (writing in {_short(str(Path(output_dir).absolute().parent))})"
        fail(WriteError(f"cannot complete{where}: {what}{path}"))
    except RecursionError:
        fail(ConfigError("the input or configuration is nested too deeply"))


#: numpy's ``tofile`` on a full disk: an OSError without errno
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def _short(text: str, most: int = 120) -> str:
    return text if len(text) <= most else text[: most // 2] + "..." + text[-most // 2 :]


def check_output_parent(output_dir: str) -> None:
    """``-o`` must be able to become a folder: its nearest existing ancestor is one (a
    URI, ``s3://bucket/out``, is a prefix on object storage)."""
    if "://" in output_dir:
        return
    path = Path(output_dir).absolute()
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputError(
                    f"{output_dir}: cannot be a folder: {ancestor} is a file, not a folder"
                )
            return
