"""The package's shape (docs: ARCHITECTURE.md, "Layout"): dependencies point downwards only,
no import circles among normnas modules or folders, and `search/` (the loop, its strategies
and evaluators) imports neither the judges above it, the config, the presentation, the
commands nor the executors.

The graph is read statically (ast) from every `import` and `from … import` in src/normnas,
the ones inside functions included: a circle closed by a function-local import still ties
two modules together (and fails at import time as soon as the import moves to the top).
Imports under `if TYPE_CHECKING:` are annotations only: left out of the plain graph, counted
by `type_checking=True` (an annotation that names a module still ties the two together).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__)."""
    out = {}
    for path in sorted((SRC / "normnas").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The normnas module an imported name lives in (a name re-exported by a package: the
    package), or None outside normnas."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, local: bool = True, type_checking: bool = False) -> dict[str, int]:
    """The normnas modules `module` imports -> the line of the first such import;
    `local=False` counts the module-level imports only, `type_checking=True` the ones under
    `if TYPE_CHECKING:` too."""
    path, is_pkg = MODULES[module]
    found: dict[str, int] = {}

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if (
                not type_checking
                and isinstance(child, ast.If)
                and "TYPE_CHECKING" in ast.unparse(child.test)
            ):
                for rest in child.orelse:
                    visit(rest, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)) and (local or not in_function):
                for target in _targets(child, module, is_pkg):
                    resolved = _resolve(target)
                    if resolved is not None and resolved != module:
                        found.setdefault(resolved, child.lineno)
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_pkg: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:  # relative: from the module's package upwards
        package = module.split(".") if is_pkg else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    # `from normnas.search import records` imports the module normnas.search.records
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def import_graph(local: bool = True, type_checking: bool = False) -> dict[str, set[str]]:
    return {m: set(imports_of(m, local, type_checking)) for m in MODULES}


# ARCHITECTURE.md's order, bottom first: a folder (or top-level module) may import those of
# its own layer and below, never above. The package root only names the version (checked
# below: it imports no normnas module), so anything may read it. config.py validates against
# names of search/ and proxies/, so it sits above them; `assemble` (the parts of a run from a
# config, the judge from `judges`) sits between the judges and what runs a search.
LAYERS: list[tuple[str, ...]] = [
    (
        "normnas", "normnas.version", "normnas.errors", "normnas.text", "normnas.log",
        "normnas.yaml_io",
    ),
    ("normnas.nn", "normnas.data"),
    ("normnas.spaces", "normnas.train"),
    ("normnas.search",),
    ("normnas.oneshot", "normnas.proxies", "normnas.bench", "normnas.latency"),
    ("normnas.config",),
    ("normnas.judges",),
    ("normnas.assemble",),
    ("normnas.ablate", "normnas.execute", "normnas.report", "normnas.export", "normnas.slim"),
    ("normnas.session",),
    ("normnas.cli", "normnas.api"),
]
LAYER = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}

# The one import that points upwards on purpose: `normnas.search(...)` is the Python API
# (the package `normnas.search` is callable; its `__call__` forwards to `normnas.api`).
# And the root's lazy `normnas.load_model`, the public loader (nothing below imports the root).
UPWARD_ON_PURPOSE = {("normnas.search", "normnas.api"), ("normnas", "normnas.export.loading")}


def unit_of(module: str) -> str:
    """The folder (`normnas.search`) or top-level module (`normnas.config`) of a module."""
    return ".".join(module.split(".")[:2])


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) pairs whose imported module lies in a higher layer."""
    return {
        (m, t)
        for m, targets in graph.items()
        for t in targets
        if LAYER[unit_of(t)] > LAYER[unit_of(m)] and (m, t) not in UPWARD_ON_PURPOSE
    }


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between folders and top-level modules (an edge: some module imports one)."""
    out: dict[str, set[str]] = {unit_of(m): set() for m in graph}
    for m, targets in graph.items():
        for t in targets:
            if unit_of(t) != unit_of(m) and (m, t) not in UPWARD_ON_PURPOSE:
                out[unit_of(m)].add(unit_of(t))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_graph_reader_finds_a_circle_and_reads_function_local_imports():
    # the reader itself, on a made-up graph and on a known edge of the real one
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert "normnas.session" in imports_of("normnas.cli.search")  # inside `run_and_report`
    assert "normnas.session" not in imports_of("normnas.cli.search", local=False)
    # `Budget` and `TrialEvent` are annotations only in the progress display
    assert "normnas.search.events" not in imports_of("normnas.report.progress")
    assert "normnas.search.events" in imports_of("normnas.report.progress", type_checking=True)
    # the layers: a made-up graph with one import upwards and one between peers
    made_up = {"normnas.search.runner": {"normnas.judges.registry"}, "normnas.bench.runs": {
        "normnas.proxies.warmup"}}  # fmt: skip
    assert upward_imports(made_up) == {("normnas.search.runner", "normnas.judges.registry")}
    assert unit_graph(made_up)["normnas.bench"] == {"normnas.proxies"}


@pytest.mark.parametrize(
    ("local", "type_checking"),
    [(False, False), (True, False), (True, True)],
    ids=["module-level", "with-function-local", "with-type-checking"],
)
def test_no_import_circles_among_normnas_modules(local, type_checking):
    assert cycles(import_graph(local, type_checking)) == []


def test_every_folder_and_top_level_module_has_its_layer():
    assert {unit_of(m) for m in MODULES} <= set(LAYER)
    # the root is in the lowest layer: it reads only the version module, and its lazy public
    # names (`normnas.load_model`) are the declared upward imports, read by no module below
    allowed = {"normnas.version"} | {t for m, t in UPWARD_ON_PURPOSE if m == "normnas"}
    assert set(imports_of("normnas", type_checking=True)) <= allowed


def test_dependencies_point_downwards_only():
    """No module imports one of a folder (or top-level module) in a higher layer, counting
    the imports inside functions and under TYPE_CHECKING."""
    wrong = upward_imports(import_graph(local=True, type_checking=True))
    assert sorted(wrong) == []


def test_no_import_circles_between_folders():
    """Folders of one layer may import each other's modules, but never in a circle."""
    assert cycles(unit_graph(import_graph(local=True, type_checking=True))) == []


@pytest.mark.parametrize(
    ("module", "must_not_import"),
    [
        # the two circles of issue 14, in both directions
        ("normnas.search.runner", "normnas.report.progress"),
        ("normnas.report.progress", "normnas.search.runner"),  # Budget: from search.budget
        ("normnas.execute.workers", "normnas.session"),
        ("normnas.search.setup", "normnas.execute.workers"),
        # issue "Where the choice of judge lives": even as annotations
        ("normnas.search.events", "normnas.search.runner"),  # both import search.budget
        ("normnas.oneshot.gradient_select", "normnas.oneshot.gradient"),  # gradient_options
        ("normnas.search.setup", "normnas.oneshot"),  # the judges are assembled in judges/
        ("normnas.search.setup", "normnas.proxies"),
        ("normnas.search.setup", "normnas.config"),  # the parts of a config: normnas.assemble
        ("normnas.search.final", "normnas.config"),
    ],
)
def test_the_former_circles_are_cut(module, must_not_import):
    assert must_not_import not in imports_of(module, type_checking=True)


def test_search_is_the_loop_only():
    """search/ imports neither the judges above it (supernets, proxies, tables, the registry),
    the config, the commands, the presentation, the executors, nor the whole run that
    chooses among them (its package's `__call__`, `normnas.search(...)`, forwards to the
    API: that one import points upwards on purpose)."""
    upper = (
        "normnas.oneshot", "normnas.proxies", "normnas.bench", "normnas.judges",
        "normnas.config", "normnas.assemble", "normnas.cli", "normnas.report",
        "normnas.execute", "normnas.session",
    )  # fmt: skip
    wrong = {
        (m, t, line)
        for m in MODULES
        if m.startswith("normnas.search")
        for t, line in imports_of(m, type_checking=True).items()
        if t.startswith(upper)
    }
    assert wrong == set()
    assert set(imports_of("normnas.search")) <= {"normnas.api"}


def test_the_commands_live_in_cli_and_the_terminal_output_in_report():
    names = set(MODULES)
    assert {"normnas.cli", "normnas.cli.errors", "normnas.cli.search", "normnas.cli.bench",
            "normnas.cli.report", "normnas.cli.ablate"} <= names  # fmt: skip
    assert {"normnas.report.leaderboard", "normnas.report.status", "normnas.report.progress"} <= (
        names
    )
    # nothing under search/ or elsewhere defines a typer command any more
    for m, (path, _) in MODULES.items():
        if not m.startswith("normnas.cli"):
            assert "import typer" not in path.read_text(encoding="utf-8"), m
