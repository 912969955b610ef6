"""The layers of the house: no import cycle, and no module importing a layer above it.

The imports are read from the source of ``stocksbot_store`` and of the dashboard,
``stocksbot_tui`` (its folder is ``tui/``), with ``ast``: every
one of them: at module level, inside functions and in ``try`` blocks. A lazy import in
a function is an import all the same: that is how ``database -> runner -> database``
hid. Only imports under ``if TYPE_CHECKING:`` are left out: they never run, and a type
named in an annotation is no dependency of the code (``reconcile`` names
``StorageService`` that way).

:data:`LAYERS` is the contract, bottom first. A module may import its own layer and
those below; within a layer the imports must not form a cycle. A new module must be
placed in a layer: the test names it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Import name -> folder, as pyproject's ``package-dir`` installs them.
PACKAGES = {"stocksbot_store": "stocksbot_store", "stocksbot_tui": "tui"}

#: Bottom first. A name stands for that module and everything inside it (a package).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundations: errors, values, URL text, driver wrappers",
        (
            "stocksbot_store.errors",
            "stocksbot_store.fields",
            "stocksbot_store.validation",
            "stocksbot_store.softdelete",
            "stocksbot_store.urls",
            "stocksbot_store.monitor",
            "stocksbot_store.connection",
        ),
    ),
    (
        "the models and the rules of the books",
        (
            "stocksbot_store.models",
            "stocksbot_store.types",  # the public API's argument types, named from the models
            "stocksbot_store.backends",
            "stocksbot_store.ledger",
            "stocksbot_store.buckets",
            "stocksbot_store.config_values",
        ),
    ),
    (
        "the schema: what a database holds and how it moves from version to version",
        (
            "stocksbot_store.legacy",
            "stocksbot_store.notify",
            "stocksbot_store.adopt_report",
            "stocksbot_store.migration.runner",
            "stocksbot_store.migration.drift",
            "stocksbot_store.migration.ops",
            "stocksbot_store.migration.render",
            "stocksbot_store.migration",  # the package itself: a docstring
            "stocksbot_store.runner",  # old import paths, re-exporting
            "stocksbot_store.autogen",
        ),
    ),
    (
        "opening a database (connect only connects)",
        (
            "stocksbot_store.access",
            "stocksbot_store.replicas",
            "stocksbot_store.database",
            "stocksbot_store.at_once",  # statements sent in one message (PostgreSQL)
        ),
    ),
    (
        "reading and writing the books",
        (
            "stocksbot_store.rows",
            "stocksbot_store.audit",
            "stocksbot_store.fills.rows",
            "stocksbot_store.fills.statements",
            "stocksbot_store.fills.known",
            "stocksbot_store.fills.alongside",
            "stocksbot_store.fills.recorder",
            "stocksbot_store.fills.bulk",
            "stocksbot_store.fills",  # the package itself: re-exports Fill, FillRecorder
            "stocksbot_store.adjustments",
            "stocksbot_store.marks",
            "stocksbot_store.queries",
            "stocksbot_store.reports",
            "stocksbot_store.equity",
            "stocksbot_store.realized",
            "stocksbot_store.metrics",
            "stocksbot_store.new_orders",
            "stocksbot_store.repositories",
            "stocksbot_store.reconcile",
            "stocksbot_store.service",
            "stocksbot_store.seed",
        ),
    ),
    (
        "opening the store: connect plus the schema check and first-time creation",
        ("stocksbot_store.store",),
    ),
    (
        "tools and their command lines",
        (
            "stocksbot_store.check",
            "stocksbot_store.transfer",
            "stocksbot_store.archive",
            "stocksbot_store.conversion",
            "stocksbot_store.backups",
            "stocksbot_store.adopt_convert",
            "stocksbot_store.adopt",
            "stocksbot_store.migration.safety",
            "stocksbot_store.migration.cli",
            "stocksbot_store.migrate",
            "stocksbot_store.commands",
            "stocksbot_store.purge",
            "stocksbot_store.audit_cli",
        ),
    ),
    ("the public API", ("stocksbot_store",)),
    (
        "the dashboard's door to the store and the values it hands out",
        (
            "stocksbot_tui.format",
            "stocksbot_tui.performance_data",
            "stocksbot_tui.rows",
            "stocksbot_tui.data",
            "stocksbot_tui.messages",
        ),
    ),
    (
        "the dashboard's views and screens",
        (
            "stocksbot_tui.widgets",
            "stocksbot_tui.screens",
        ),
    ),
    (
        "the dashboard app and its command",
        (
            "stocksbot_tui.app",
            "stocksbot_tui.demo",
            "stocksbot_tui.headless",
            "stocksbot_tui.__main__",
            "stocksbot_tui",
        ),
    ),
]

#: Cycles known and being removed; each names why it may stay for now.
KNOWN_CYCLES: list[frozenset[str]] = []


# -- reading the imports -----------------------------------------------------------------


def find_modules(root: Path, packages: dict[str, str]) -> dict[str, Path]:
    """Every module of ``packages`` (import name -> folder under ``root``), by the dotted
    name it is imported under (a package by its own)."""
    modules = {}
    for package, folder in packages.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = [package, *path.relative_to(root / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree`` except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for other in node.orelse:
                yield from _imports_of(other)
        else:
            yield from _imports_of(node)


def _imports_of(node: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    yield from _imports(node)


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that the module ``name`` imports (``from pkg import
    sub`` is the submodule ``pkg.sub``; ``from pkg import thing`` is ``pkg``)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module
                for alias in node.names
            ]
        for target in targets:
            while target and target not in modules:  # import a.b.c counts as a.b.c's module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path, packages: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports."""
    modules = find_modules(root, packages)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected groups of more than one module (Tarjan), i.e. the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(frozenset(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str, layers: list[tuple[str, tuple[str, ...]]]) -> int | None:
    """The index of the layer that declares ``module`` (the longest declared prefix)."""
    best, best_length = None, -1
    for number, (_, names) in enumerate(layers):
        for declared in names:
            if (module == declared or module.startswith(declared + ".")) and len(
                declared
            ) > best_length:
                best, best_length = number, len(declared)
    return best


def upward_imports(
    graph: dict[str, set[str]], layers: list[tuple[str, tuple[str, ...]]]
) -> list[str]:
    """One line for each import of a module declared in a higher layer."""
    problems = []
    for module, targets in sorted(graph.items()):
        own = layer_of(module, layers)
        for target in sorted(targets):
            theirs = layer_of(target, layers)
            if own is not None and theirs is not None and theirs > own:
                problems.append(
                    f"{module} ({layers[own][0]}) imports {target} ({layers[theirs][0]})"
                )
    return problems


# -- the contract --------------------------------------------------------------------------


def test_every_module_has_a_layer():
    graph = import_graph(ROOT, PACKAGES)
    unplaced = sorted(m for m in graph if layer_of(m, LAYERS) is None)
    assert not unplaced, (
        f"modules in no layer: {unplaced}; add each to LAYERS in "
        "tests/test_layers.py, in the lowest layer its imports allow"
    )


def test_no_import_cycle():
    found = [c for c in cycles(import_graph(ROOT, PACKAGES)) if c not in KNOWN_CYCLES]
    assert not found, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


def test_no_module_imports_a_layer_above_it():
    problems = upward_imports(import_graph(ROOT, PACKAGES), LAYERS)
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_connect_imports_nothing_that_touches_a_schema():
    """What ``database.connect`` reaches, directly or not, holds no migration code."""
    graph = import_graph(ROOT, PACKAGES)
    reached, todo = set(), ["stocksbot_store.database"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph[module])
    assert not {
        m for m in reached if m.startswith(("stocksbot_store.migration", "stocksbot_store.store"))
    }, reached


def test_the_store_never_imports_the_dashboard_or_textual():
    modules = find_modules(ROOT, {"stocksbot_store": "stocksbot_store"})
    for name, path in modules.items():
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            assert not [
                n for n in names if n.split(".")[0] in ("stocksbot_tui", "tui", "textual")
            ], name


def test_pyproject_ships_every_package_under_the_names_read_here():
    """Each folder with an ``__init__.py`` is a package pyproject lists, and the folders
    read here are where pyproject's ``package-dir`` installs them from."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = setuptools.get("package-dir", {})
    for package, folder in PACKAGES.items():
        assert folders.get(package, package) == folder, package
    packages = {
        name for name, path in find_modules(ROOT, PACKAGES).items() if path.name == "__init__.py"
    }
    assert packages <= set(setuptools["packages"]), sorted(packages - set(setuptools["packages"]))


# -- the checker catches what it is meant to ----------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return import_graph(tmp_path, {"pkg": "pkg"})


def test_a_lazy_import_in_a_function_is_a_cycle(tmp_path):
    graph = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "def f():\n    from .high import g\n    return g()\n",
            "pkg/high.py": "from . import low\n\ndef g():\n    return low\n",
        },
    )
    assert graph == {"pkg": set(), "pkg.low": {"pkg.high"}, "pkg.high": {"pkg.low"}}
    assert cycles(graph) == [frozenset({"pkg.low", "pkg.high"})]
    layers = [("low", ("pkg.low",)), ("high", ("pkg.high", "pkg"))]
    assert upward_imports(graph, layers) == ["pkg.low (low) imports pkg.high (high)"]


def test_type_checking_imports_are_left_out_and_absolute_ones_counted(tmp_path):
    graph = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from .sub.leaf import x\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/leaf.py": (
                "from typing import TYPE_CHECKING\nimport pkg.other\n"
                "if TYPE_CHECKING:\n    from pkg import top\nx = 1\n"
            ),
            "pkg/other.py": "try:\n    import pkg.sub\nexcept ImportError:\n    pass\n",
            "pkg/top.py": "",
        },
    )
    assert graph["pkg"] == {"pkg.sub.leaf"}
    assert graph["pkg.sub.leaf"] == {"pkg.other"}
    assert graph["pkg.other"] == {"pkg.sub"}
    assert layer_of("pkg.sub.leaf", [("a", ("pkg",)), ("b", ("pkg.sub",))]) == 1
