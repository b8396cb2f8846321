"""docs/configuration.md is generated from the configuration models, so it cannot drift."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from qudata.config import FORMAT_OPTIONS
from qudata.sections import Section

DOCS = Path(__file__).resolve().parents[1] / "docs"


def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_config_reference", DOCS / "make_config_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_reference_is_current() -> None:
    assert (DOCS / "configuration.md").read_text(encoding="utf-8") == reference().render(), (
        "docs/configuration.md is stale: run python docs/make_config_reference.py"
    )


def test_every_key_of_every_format_is_listed() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for name, options in FORMAT_OPTIONS.items():
        for field in options.model_fields:
            assert f"| `pack.{name}.{field}` |" in text


def test_a_key_without_a_description_is_refused() -> None:
    class Bare(Section):
        width: int = 80

    with pytest.raises(ValueError, match=r"Bare.width \(pack.bare.width\) has no"):
        reference()._rows(Bare, "pack.bare")
