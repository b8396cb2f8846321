"""Write ``docs/configuration.md`` from the configuration models (a test keeps it in sync).

Every key, its default and its meaning come from the models' fields
(``Field(description=...)``): the run's sections (``qudata.config``) and each
format's options, in the registry's order (``qudata.pack.registry``).

python docs/make_config_reference.py
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from qudata.config import FORMAT_OPTIONS, Config, PackConfig
from qudata.pack.registry import FORMATTERS

TARGET = Path(__file__).with_name("configuration.md")

INTRO = """\
# Configuration

Generated from the configuration models by `docs/make_config_reference.py`: each key's
meaning is the `description` of its field (`qudata/config_*.py`, and each format's
options beside the format in `qudata/pack/<format>.py`).

A YAML file (loaded with `yaml.safe_load`) with these sections; every key is optional.
An unknown key or a wrong type is an error that names its path and the allowed keys.
"""

EXAMPLE = """\
The specification's example loads as written (`examples/pack.yaml`):

```yaml
pack:
  chatml:
    system_message: "You are a helpful assistant."
    include_metadata: true
    max_tokens_per_message: 4096
  jsonl:
    fields: ["text", "labels", "metadata", "quality_score"]
    filter_low_quality: true
    min_quality_score: 0.7
  plain:
    separator: "\\n---\\n"
    include_headers: true
    max_line_length: 120
```
"""


def _section(annotation: Any) -> type[BaseModel] | None:
    """The model of a section-typed field (``X`` or ``X | None``), else ``None``."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    for candidate in (annotation, *options):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _value(value: Any) -> str:
    """A default as YAML would write it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value) if not value.isprintable() or value != value.strip() else value
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _default(field: FieldInfo) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "shown_default" in extra:
        return str(extra["shown_default"])
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    shown = _value(value)
    return shown if value is None else f"`{shown}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}"
        section = _section(field.annotation)
        if section is not None:
            rows.extend(_rows(section, key))
            continue
        if not field.description:
            raise ValueError(f"{model.__name__}.{name} ({key}) has no Field(description=...)")
        meaning = field.description
        if model is PackConfig and name == "formats":
            meaning += ": " + ", ".join(f"`{n}`" for n in FORMATTERS)
        rows.append(f"| `{key}` | {_cell(_default(field))} | {_cell(meaning)} |")
        if model is PackConfig and name == "formats":
            for fmt, options in FORMAT_OPTIONS.items():
                rows.extend(_rows(options, f"pack.{fmt}"))
    return rows


def render() -> str:
    """The reference: the introduction, one table row per key, the specification's example."""
    table = ["| key | default | meaning |", "|---|---|---|"]
    for name, field in Config.model_fields.items():
        section = _section(field.annotation)
        assert section is not None, name
        table.extend(_rows(section, name))
    return "\n".join([INTRO, *table, "", EXAMPLE])


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
