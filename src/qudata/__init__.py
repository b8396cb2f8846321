"""qudata: turn processed documents into training data for large language models.

One call runs the whole job (read, check, deduplicate, format, write)::

    >>> import qudata
    >>> report = qudata.pack_dataset("examples/sample.jsonl", "out/")  # doctest: +SKIP
    >>> report.balanced()                                               # doctest: +SKIP
    True

The formatters of the specification are in :mod:`qudata.pack`.
"""

from typing import TYPE_CHECKING, Any

from qudata.config import Config, load_config
from qudata.errors import ConfigError, InputError, MissingExtraError, OutputError, QudataError
from qudata.models import Document
from qudata.pack import registry as _registry  # the formats, with their options
from qudata.version import __version__

del _registry

if TYPE_CHECKING:
    from qudata.pipeline import pack_dataset


__all__ = [
    "Config",
    "ConfigError",
    "Document",
    "InputError",
    "MissingExtraError",
    "OutputError",
    "QudataError",
    "__version__",
    "load_config",
    "pack_dataset",
]


def __getattr__(name: str) -> Any:
    if name == "pack_dataset":  # imported on first use: ``import qudata`` stays light
        from qudata.pipeline import pack_dataset

        return pack_dataset
    raise AttributeError(f"module 'qudata' has no attribute {name!r}")
