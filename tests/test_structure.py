"""The package's shape: no import cycle, no module over 400 lines.

The import graph is built from the source (no import runs): every ``import`` and
``from ... import`` of a qudata module counts, at the top of a module, under
``if TYPE_CHECKING:`` and inside functions alike, since each of them is a
dependency that a cycle closes over.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import qudata

PACKAGE_DIR = Path(qudata.__file__).parent
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


MODULES = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def imported(name: str, source: str, *, package: bool = False) -> set[str]:
    """The qudata modules ``name`` imports: ``from a.b import c`` is ``a.b.c`` when that is
    a module, else ``a.b`` (a package's ``__init__``); relative imports are resolved."""
    package_name = name if package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package_name.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in MODULES:
                    out.add(target)
                elif base in MODULES:
                    out.add(base)
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    return {
        name: imported(name, path.read_text(encoding="utf-8"), package=path.name == "__init__.py")
        for name, path in MODULES.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(root: str) -> None:
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(found)


SOURCE = """
from typing import TYPE_CHECKING
import json
from qudata.errors import ConfigError
from . import registry
from ..io import writers
if TYPE_CHECKING:
    from qudata.config import Config

def later():
    from qudata.models import Document
    import qudata.io.lines
"""


def test_the_graph_sees_every_kind_of_import() -> None:
    """Type-only and function-level imports are edges (a cycle may close over either);
    relative imports are resolved; other packages are not nodes."""
    assert imported("qudata.pack.base", SOURCE) == {
        "qudata.errors",
        "qudata.pack.registry",
        "qudata.io.writers",
        "qudata.config",
        "qudata.models",
        "qudata.io.lines",
    }


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_module_over_400_lines() -> None:
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()
    }
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert over == {}, f"modules over {MAX_LINES} lines: {over}"
