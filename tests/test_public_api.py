"""The public surface: ``__all__`` everywhere, light imports, type information shipped."""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import qudata

PACKAGE_DIR = Path(qudata.__file__).parent
MODULES = sorted(
    ["qudata"] + [m.name for m in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="qudata.")]
)
HEAVY = ("pyarrow", "rensa", "tokenizers", "jinja2")


def isort_key(name: str) -> tuple[int, list[object]]:
    """Ruff's RUF022 order: SCREAMING_CASE, then CamelCase, then the rest; natural within."""
    if name.isupper() and len(name) > 1:
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    parts: list[object] = [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]
    return group, parts


def test_every_source_file_is_a_listed_module() -> None:
    files = {
        ".".join(p.relative_to(PACKAGE_DIR.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in PACKAGE_DIR.rglob("*.py")
    }
    assert files == set(MODULES)


def module_file(name: str) -> Path:
    path = PACKAGE_DIR.parent.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def static_all(name: str) -> list[str] | None:
    """``__all__`` read from the source, without importing (``__main__`` runs on import)."""
    tree = ast.parse(module_file(name).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return list(ast.literal_eval(value))
    return None


@pytest.mark.parametrize("name", MODULES)
def test_module_all_is_defined_and_sorted(name: str) -> None:
    exported = static_all(name)
    assert exported is not None, f"{name} has no literal __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    assert exported == sorted(exported, key=isort_key), f"{name}.__all__ is not sorted"


@pytest.mark.parametrize("name", [m for m in MODULES if m != "qudata.__main__"])
def test_module_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    for item in getattr(module, "__all__", []):
        assert getattr(module, item, None) is not None, f"{name}.{item} does not exist"


def test_main_module_runs_the_cli() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run(
        [sys.executable, "-m", "qudata", "--version"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0
    assert qudata.__version__ in out.stdout


def test_top_level_api() -> None:
    assert callable(qudata.pack_dataset)
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert f'version = "{qudata.__version__}"' in pyproject
    assert issubclass(qudata.ConfigError, qudata.QudataError)
    assert issubclass(qudata.InputError, qudata.QudataError)
    assert issubclass(qudata.OutputError, qudata.QudataError)
    with pytest.raises(AttributeError):
        _ = qudata.no_such_name  # type: ignore[attr-defined]


def test_spec_import_line() -> None:
    from qudata.pack import ChatMLFormatter, JSONLFormatter, PlainTextFormatter

    for cls in (ChatMLFormatter, JSONLFormatter, PlainTextFormatter):
        formatter = cls()
        assert callable(formatter.format_documents)
        assert callable(formatter.export_to_file)


def _imported_after(statement: str) -> set[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return set(out.stdout.split())


@pytest.mark.parametrize("statement", ["import qudata.pack", "import qudata"])
def test_light_imports(statement: str) -> None:
    loaded = _imported_after(statement)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == [], f"{statement!r} imports {heavy}"


def test_import_qudata_does_not_import_the_pipeline() -> None:
    assert "qudata.pipeline" not in _imported_after("import qudata")


def test_py_typed_is_shipped() -> None:
    assert (PACKAGE_DIR / "py.typed").is_file()
