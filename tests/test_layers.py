"""The package is layered, and imports go one way: a module never imports a higher layer.

Every import counts: module-level, inside functions, under ``TYPE_CHECKING``, relative
(``from . import x``), and ``importlib.import_module("wspace....")`` with a literal name (or
an f-string's literal prefix). The layers, low to high, are listed in :data:`LAYERS` and
drawn in ``docs/design.md``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import wspace

ROOT = Path(wspace.__file__).parent

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "wspace.errors",
            "wspace.layout",
            "wspace.layout_build",
            "wspace.layout_convert",
            "wspace.tensor_spec",
            "wspace.convention",
            "wspace.architectures",
            "wspace.weightspace.symmetry",  # Layout.symmetry: derived from the layout alone
        ),
    ),
    ("store", ("wspace.store",)),
    # "wspace" alone: the facade (wspace/__init__.py)
    ("query", ("wspace.query", "wspace.weightspace", "wspace")),
    ("apps", ("wspace.io", "wspace.train", "wspace.analysis", "wspace.testing")),
    # programs: the command line, the demo, the weight-space worked example (it trains a zoo)
    ("top", ("wspace.cli", "wspace.demo", "wspace.__main__", "wspace.weightspace.example")),
]
"""Layers, lowest first, and the modules (with their submodules) that form each."""

RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}


def layer_of(module: str) -> str | None:
    """The layer of a wspace module (the longest matching prefix), ``None`` if it has none.

    ``wspace`` matches only the facade itself, not its submodules.
    """
    best: tuple[int, str] | None = None
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            hit = module == prefix or (prefix != "wspace" and module.startswith(prefix + "."))
            if hit and (best is None or len(prefix) > best[0]):
                best = (len(prefix), name)
    return None if best is None else best[1]


def module_name(path: Path, root: Path = ROOT) -> str:
    """Dotted name of a module file under the package ``root``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass(frozen=True)
class Import:
    """One import of a wspace module by a wspace module."""

    importer: str
    target: str
    line: int

    def __str__(self) -> str:
        return (
            f"{self.importer} ({layer_of(self.importer)}) imports {self.target} "
            f"({layer_of(self.target)}) at line {self.line}"
        )


def _resolve_from(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _literal_prefix(node: ast.expr) -> str | None:
    """A string constant, or the literal start of an f-string (up to its last dot)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value.rpartition(".")[0] or None
    return None


def imports_of(importer: str, source: str, known: set[str], is_package: bool) -> list[Import]:
    """Every import of a wspace module in ``source`` (the module ``importer``), wherever it is
    written. ``from pkg import name`` targets ``pkg.name`` when that is a module."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(importer, is_package, node)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                targets.append(candidate if candidate in known else base)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                literal = _literal_prefix(node.args[0])
                if literal:
                    targets = [literal]
        for target in targets:
            if target == "wspace" or target.startswith("wspace."):
                found.append(Import(importer, target, getattr(node, "lineno", 0)))
    return found


def package_modules() -> dict[str, Path]:
    """Every module of the installed package under test, by dotted name."""
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def violations(modules: dict[str, tuple[str, bool]]) -> list[Import]:
    """Imports of a higher layer by a lower one; ``modules``: name -> (source, is package)."""
    known = set(modules)
    bad = []
    for importer, (source, is_package) in modules.items():
        for imp in imports_of(importer, source, known, is_package):
            low, high = layer_of(importer), layer_of(imp.target)
            if low is not None and high is not None and RANK[high] > RANK[low]:
                bad.append(imp)
    return bad


def _sources() -> dict[str, tuple[str, bool]]:
    return {
        name: (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for name, path in package_modules().items()
    }


def test_every_module_belongs_to_a_layer():
    homeless = [name for name in package_modules() if layer_of(name) is None]
    assert not homeless, f"add these modules to a layer in LAYERS: {homeless}"


def test_no_module_imports_a_higher_layer():
    bad = violations(_sources())
    assert not bad, "imports against the layers:\n" + "\n".join(map(str, bad))


def test_the_store_layer_knows_nothing_of_queries():
    store = {n: s for n, s in _sources().items() if layer_of(n) == "store"}
    assert "wspace.store.handle" in store and "wspace.store.chunks.read" in store
    assert not violations(store)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from wspace.query import Zoo\n", "wspace.query"),
        ("def f():\n    from wspace.query.zoo import Zoo\n", "wspace.query.zoo"),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from wspace import Zoo\n",
            "wspace",
        ),
        ("import wspace\n", "wspace"),
        ("from ... import query\n", "wspace.query"),
        ("from ...query import zoo\n", "wspace.query.zoo"),
        ("import importlib\nimportlib.import_module('wspace.cli')\n", "wspace.cli"),
        ("import importlib\nimportlib.import_module(f'wspace.io.{x}')\n", "wspace.io"),
    ],
)
def test_the_check_finds_every_kind_of_import(source, expected):
    """A store module written each way is caught (the check itself can fail)."""
    modules = _sources()
    modules["wspace.store.chunks.fake"] = (source, False)
    bad = [b for b in violations(modules) if b.importer == "wspace.store.chunks.fake"]
    assert [b.target for b in bad] == [expected]


def test_same_or_lower_layers_are_allowed():
    source = "from wspace.errors import CorruptDataError\nfrom . import plan\nimport wspace.store\n"
    modules = _sources()
    modules["wspace.store.chunks.fake"] = (source, False)
    assert not [b for b in violations(modules) if b.importer == "wspace.store.chunks.fake"]


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return set(result.stdout.split())


def test_importing_the_store_layer_loads_no_query_layer():
    loaded = _loaded_after("import wspace.store")
    assert "wspace.store.handle" in loaded
    assert not {m for m in loaded if m == "wspace.query" or m.startswith("wspace.query.")}
    assert "xarray" not in loaded and "torch" not in loaded


def test_facade_loads_the_query_layer_and_architectures_on_use():
    loaded = _loaded_after("import wspace")
    assert "torch" not in loaded  # wspace.architectures imports torch: only on use
    loaded = _loaded_after(
        "import wspace\nassert wspace.Zoo.__module__ == 'wspace.query.zoo'\n"
        "assert sum(p.numel() for p in wspace.architectures.lenet5().parameters()) == 91481"
    )
    assert {"wspace.query", "wspace.architectures", "torch"} <= loaded
