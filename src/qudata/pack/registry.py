"""The registry of output formats: a name, its formatter class, and that class's options.

Adding a format is one module and one line here:

1. Write ``pack/<format>.py`` with its options model and its formatter class, in this
   order (see ``pack/preference.py`` for a small one; ChatML's options, which the other
   conversation formats follow, sit in ``pack/chatml_options.py``)::

       class KTOOptions(Section):                  # from qudata.sections
           \"\"\"``pack.kto``: ...\"\"\"
           include_metadata: bool = Field(         # each option: its default and
               default=False,                      # its meaning, which is the line
               description="add the `metadata` object",  # of docs/configuration.md
           )

       class KTOFormatter(Formatter[KTOOptions]):  # from qudata.pack.base
           name: ClassVar[str] = "kto"             # the name in pack.formats and -f
           extension: ClassVar[str] = ".jsonl"
           options_model: ClassVar[type[KTOOptions]] = KTOOptions

           def format_document(self, doc, opts, state): ...  # records, or a Drop
           def validate(self, record, state): ...   # the error codes of a record

   For ``qudata validate`` to check files of the format, name a
   :class:`~qudata.quality.problems.FileRules` class in ``file_rules`` (see
   ``pack/preference.py``: its rules, and :func:`~qudata.quality.problems.add_hints`
   for the problem codes they add).
2. Add one line to :data:`FORMATTERS` below.
3. Regenerate the references: ``python docs/make_config_reference.py`` (the new
   ``pack.<format>`` keys) and ``python docs/make_cli_reference.py`` (the ``-f`` choices).

Nothing else changes: the configuration's ``pack.<format>`` section is validated by
the options model (through :data:`qudata.config.FORMAT_OPTIONS`, filled here), and the
command line's ``--format`` choices, ``pack.formats`` and ``qudata validate --format``
(formats with ``file_rules``) come from this table.
"""

from __future__ import annotations

from typing import Any

from qudata.config import FORMAT_OPTIONS
from qudata.errors import ConfigError
from qudata.pack.base import Formatter
from qudata.pack.chatml import ChatMLFormatter
from qudata.pack.jsonl import JSONLFormatter
from qudata.pack.kto import KTOFormatter
from qudata.pack.llmbuilder import LLMBuilderFormatter
from qudata.pack.megatron import MegatronFormatter
from qudata.pack.packed import PackedFormatter
from qudata.pack.parquet import ParquetFormatter
from qudata.pack.plain import PlainTextFormatter
from qudata.pack.preference import PreferenceFormatter

__all__ = ["FORMATTERS", "get_formatter"]

#: In the order of the configuration's ``pack`` sections (the manifest writes them so).
FORMATTERS: dict[str, type[Formatter[Any]]] = {
    ChatMLFormatter.name: ChatMLFormatter,
    JSONLFormatter.name: JSONLFormatter,
    PlainTextFormatter.name: PlainTextFormatter,
    ParquetFormatter.name: ParquetFormatter,
    LLMBuilderFormatter.name: LLMBuilderFormatter,
    MegatronFormatter.name: MegatronFormatter,
    PackedFormatter.name: PackedFormatter,
    PreferenceFormatter.name: PreferenceFormatter,
    KTOFormatter.name: KTOFormatter,
}

FORMAT_OPTIONS.update((name, cls.options_model) for name, cls in FORMATTERS.items())


def get_formatter(name: str, config: Any = None, **options: Any) -> Formatter[Any]:
    """A formatter by name: ``get_formatter("chatml")``."""
    try:
        cls = FORMATTERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown format {name!r} (choose from: {', '.join(sorted(FORMATTERS))})"
        ) from None
    return cls(config, **options)
