"""The package's shape: no import circles among normnas modules, and `search/` (the loop, its
strategies and evaluators) imports neither the presentation, the commands nor the executors.

The graph is read statically (ast) from every `import` and `from … import` in src/normnas,
the ones inside functions included: a circle closed by a function-local import still ties
two modules together (and fails at import time as soon as the import moves to the top).
Imports under `if TYPE_CHECKING:` are annotations only and are left out.
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


def imports_of(module: str, local: bool = True) -> dict[str, int]:
    """The normnas modules `module` imports -> the line of the first such import;
    `local=False` counts the module-level imports only."""
    path, is_pkg = MODULES[module]
    found: dict[str, int] = {}

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
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


def import_graph(local: bool = True) -> dict[str, set[str]]:
    return {m: set(imports_of(m, local)) for m in MODULES}


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


@pytest.mark.parametrize("local", [False, True], ids=["module-level", "with-function-local"])
def test_no_import_circles_among_normnas_modules(local):
    assert cycles(import_graph(local)) == []


@pytest.mark.parametrize(
    ("module", "must_not_import"),
    [
        # the two circles of issue 14, in both directions
        ("normnas.search.runner", "normnas.report.progress"),
        ("normnas.report.progress", "normnas.search.runner"),  # Budget only as an annotation
        ("normnas.execute.workers", "normnas.session"),
        ("normnas.search.setup", "normnas.execute.workers"),
    ],
)
def test_the_former_circles_are_cut(module, must_not_import):
    assert must_not_import not in imports_of(module)


def test_search_is_the_loop_only():
    """search/ imports neither the commands, the presentation, the executors, nor the whole
    run that chooses among them (its package's `__call__`, `normnas.search(...)`, forwards
    to the API: that one import points upwards on purpose)."""
    upper = ("normnas.cli", "normnas.report", "normnas.execute", "normnas.session")
    wrong = {
        (m, t, line)
        for m in MODULES
        if m.startswith("normnas.search")
        for t, line in imports_of(m).items()
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
