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


# The layers of CONTRIBUTING.md's package map: a module imports only modules of its own layer or below
# (cycles within a layer are caught above). Built-in plugins and tasks sit beside layer 2: they use the
# foundation, the settings and the scorer, never the orchestration, the renderers or the commands.
LAYERS = {
    0: ["winoeval", "winoeval.errors", "winoeval.api", "winoeval.hookspecs", "winoeval.metrics",
        "winoeval.sampling", "winoeval.verbosity", "winoeval.scoring.objectives", "winoeval.testing.models",
        "winoeval.testing.point_mass"],
    1: ["winoeval.config", "winoeval.storage", "winoeval.fingerprint", "winoeval.localdata", "winoeval.hub",
        "winoeval.training",
        "winoeval.options", "winoeval.validate"],
    2: ["winoeval.registry", "winoeval.scoring", "winoeval.records", "winoeval.errorlog", "winoeval.results",
        "winoeval.distributed",
        "winoeval.groups",
        "winoeval.calibration", "winoeval.plugins", "winoeval.tasks", "winoeval.testing.data"],
    3: ["winoeval.runner", "winoeval.comparison"],
    4: ["winoeval.report", "winoeval.plot", "winoeval.html_report"],
    5: ["winoeval.compare", "winoeval.rescore", "winoeval.cli", "winoeval.docs", "winoeval.__main__", "winoeval.testing",
        "winoeval.testing.check"],
}


def layer_of(module: str) -> int:
    best = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if module == prefix or (module.startswith(prefix + ".") and prefix != "winoeval"):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), layer)
    assert best is not None, f"{module} is in no layer: add it to LAYERS (and to CONTRIBUTING.md's package map)"
    return best[1]


def test_the_layer_table_places_modules_by_their_longest_prefix():
    assert layer_of("winoeval.scoring.objectives") == 0 and layer_of("winoeval.scoring.diffusion") == 2
    assert layer_of("winoeval.plugins.mnist_unet") == 2 and layer_of("winoeval.cli") == 5


def test_every_module_imports_only_its_own_layer_or_below():
    graph = import_graph()
    upward = [f"{m} (layer {layer_of(m)}) → {d} (layer {layer_of(d)})"
              for m, deps in sorted(graph.items()) for d in sorted(deps) if layer_of(d) > layer_of(m)]
    assert not upward, "imports against the layering: " + "; ".join(upward)


def test_the_package_map_in_contributing_names_every_module():
    text = (REPO / "CONTRIBUTING.md").read_text()
    ours = [m for m in import_graph() if m.startswith("winoeval.") and m not in ("winoeval.__main__", "winoeval.plugins", "winoeval.tasks")
            and not m.startswith(("winoeval.plugins.", "winoeval.tasks.", "winoeval.testing."))]
    # top-level modules as winoeval/NAME.py; a subpackage's modules as NAME.py in its indented block
    missing = [m for m in ours if (f"winoeval/{m.split('.')[1]}.py" if m.count(".") == 1
                                   else f"  {m.rsplit('.', 1)[1]}.py") not in text
               and f"winoeval/{m.split('.')[1]}/" not in text]
    assert not missing, f"CONTRIBUTING.md's package map lacks: {missing}"
