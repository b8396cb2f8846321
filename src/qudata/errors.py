"""Errors raised by qudata.

Every error a user can cause derives from :class:`QudataError`; the CLI turns
them into one clean ``Error: ...`` line and an exit code, never a traceback::

    QudataError
    ├── ConfigError          bad configuration: unknown key, wrong type, bad value (exit 2)
    ├── MissingExtraError    an optional dependency is not installed (exit 2)
    ├── InputError           an input cannot be read or holds a bad record (exit 1)
    │   └── InputNotFoundError   an input argument names nothing to read (exit 2)
    ├── OutputError          the output folder or file cannot be written safely (exit 2)
    │   ├── WriteError       writing failed: disk full, permission denied, name too long (exit 1)
    │   └── IntegrityError   what would be published disagrees with the run's account (exit 1)
    ├── StorageError         object storage failed: unreachable, denied, retries spent (exit 1)
    └── WorkerError          a worker process failed or ended unexpectedly (exit 1)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "InputError",
    "InputNotFoundError",
    "IntegrityError",
    "MissingExtraError",
    "OutputError",
    "QudataError",
    "StorageError",
    "WorkerError",
    "WriteError",
    "error_state",
    "rebuild_error",
]


class QudataError(Exception):
    """Base class of every error qudata raises on purpose."""

    exit_code = 2


class ConfigError(QudataError):
    """The configuration is invalid; the message names the key path."""


class MissingExtraError(QudataError, ImportError):
    """An optional dependency is missing; the message names the ``pip install``.

    Example::

        raise MissingExtraError("parquet", "pyarrow", feature="Parquet input")
    """

    def __init__(self, extra: str, package: str, *, feature: str) -> None:
        self.extra = extra
        self.package = package
        super().__init__(
            f"{feature} needs the optional package '{package}': pip install 'qudata[{extra}]'"
        )


class InputError(QudataError):
    """An input file cannot be read, or a record in it is bad (under ``on_error: fail``).

    ``source`` and ``line`` say where; ``reason`` is a stable snake_case code.
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        reason: str = "invalid",
    ) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        self.detail = message
        where = source or ""
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


class InputNotFoundError(InputError):
    """An input argument names nothing that can be read: no such file or folder, a glob
    that matches nothing, a folder without inputs, an unknown file type. A usage error."""

    exit_code = 2


class OutputError(QudataError):
    """The output cannot be written safely (folder not empty, path escapes, ...)."""


class StorageError(QudataError):
    """Object storage failed (unreachable, access denied, an object changed while read):
    a failure of the storage, not of the input, so the run stops rather than rejecting
    the input. ``uri`` names what was read."""

    exit_code = 1

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        self.uri = uri
        super().__init__(message)


class WorkerError(QudataError):
    """A worker process of the local engine failed, or ended before it replied."""

    exit_code = 1


class WriteError(OutputError):
    """Writing the output failed at the system level (``ENOSPC``, ``EACCES``, ...)."""

    exit_code = 1


class IntegrityError(OutputError):
    """What the run would publish is not what it accounted for: a part file missing or
    changed at the commit, a published file that disagrees with the manifest. Nothing
    is published."""

    exit_code = 1


def error_state(exc: QudataError | OSError) -> tuple[Any, ...]:
    """A qudata error, or a system error (a full disk), as plain data, to send from a
    worker process or a Ray task (keyword-only constructors do not survive pickling)."""
    if isinstance(exc, OSError) and not isinstance(exc, QudataError):
        return (OSError, (exc.errno, exc.strerror or str(exc), exc.filename), None)
    return (type(exc), exc.args, dict(exc.__dict__))


def rebuild_error(state: tuple[Any, ...]) -> QudataError | OSError:
    """The error of :func:`error_state`, with its message and attributes."""
    cls, args, attributes = state
    if attributes is None:  # a system error: errno, strerror, filename
        return OSError(*args) if args[2] is not None else OSError(*args[:2])
    exc: QudataError = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(attributes)
    return exc
