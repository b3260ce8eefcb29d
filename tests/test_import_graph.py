"""The core is layered: no module of winoeval imports (directly or through others) a module that imports it back.

The graph is read from the source (every ``import`` statement, also those inside functions, except
``if TYPE_CHECKING:`` blocks, which never run), for the modules the distribution installs:
``winoeval/`` and ``winoeval/testing/`` as well as ``plugins/`` and ``tasks/`` (installed as
``winoeval.plugins`` and ``winoeval.tasks``).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {"winoeval": REPO / "winoeval", "winoeval.testing": REPO / "winoeval" / "testing",
            "winoeval.scoring": REPO / "winoeval" / "scoring",
            "winoeval.plugins": REPO / "plugins", "winoeval.tasks": REPO / "tasks"}


def module_files() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.glob("*.py")):
            out[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The winoeval modules that ``module`` imports (a name imported from a package that is itself a
    module, as in ``from . import registry``, counts as that module)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            names = [base_name] + [f"{base_name}.{alias.name}" for alias in node.names]
        else:
            names = []
        for name in names:
            if name in known and name != module:
                found.add(name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {m: _imported(ast.parse(p.read_text(), str(p)), m, p.stem == "__init__", known) for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sorted(out)


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}, "g": set()}
    assert cycles(graph) == [["a", "b", "c"], ["e", "f"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_reads_relative_lazy_and_type_only_imports(tmp_path):
    source = ("from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
              "from . import registry\nfrom .config import RunConfig\n"
              "if TYPE_CHECKING:\n    from .scoring import ScoreResult\n"
              "def f():\n    from .hub import load_hf_dataset\n    import winoeval.metrics\n")
    known = {"winoeval", "winoeval.registry", "winoeval.config", "winoeval.scoring", "winoeval.hub",
             "winoeval.metrics", "winoeval.x"}
    assert _imported(ast.parse(source), "winoeval.x", False, known) == {
        "winoeval", "winoeval.registry", "winoeval.config", "winoeval.hub", "winoeval.metrics"}


def test_winoeval_has_no_import_cycle():
    graph = import_graph()
    assert {"winoeval.cli", "winoeval.runner", "winoeval.hub", "winoeval.localdata"} <= set(graph)
    found = cycles(graph)
    detail = "; ".join(" ↔ ".join(c) + " (" + ", ".join(f"{m} → {sorted(graph[m] & set(c))}" for m in c) + ")"
                       for c in found)
    assert not found, f"import cycles: {detail}"
