"""What a submission's source may not reach, checked before any of it runs.

A hidden test may forbid library functions while it calls an answer (``with
forbidding("torch.nn.functional.conv2d"): ...``). At run time the child replaces them by
guards before the first cell runs (:class:`mmcourse.grading.forbid.Guards`), but code
in the submission's own process can always be made to dodge a check made in that
process. So the grader also reads the source of every cell the learner wrote or changed
(a code cell whose text is not one of the exercise's own cells) and refuses:

* for a question that forbids names: any mention of a forbidden function under any
  module or alias (``F.conv2d``, ``from torch import conv2d``, ``_c = torch.conv2d``;
  for a method ``pkg.Class.method`` the class itself); private modules and attributes
  of imported modules (``torch._VF``, ``torch._C``, ``torch.ops``); and computed access
  to names (``getattr``, ``eval``, ``exec``, ``__import__``, ``importlib``, ``vars``,
  ``globals``, ``sys.modules``, ``operator.attrgetter``, attributes such as
  ``__dict__`` or ``__closure__``), which would reach any of them by a string;
* for a question whose tests compare with a function of the course's reference
  implementations (``mmcourse.nn.scratch``): a call of that function, the module
  handed around as a value, and computed access as above (its checking tool
  ``relative_error``, and the building blocks that answer no question, stay allowed);
* for every question of the exercise: the grader's own code (``mmcourse.grading``,
  ``__main__``).

:func:`violations` maps each question to the reason it scores 0.
"""
from __future__ import annotations

import ast


DYNAMIC_CALLS = frozenset({"getattr", "setattr", "delattr", "vars", "globals", "locals",
                           "eval", "exec", "compile", "__import__", "breakpoint"})
"""Built-in functions that reach a name through a string or a namespace."""
DYNAMIC_MODULES = frozenset({"importlib", "builtins", "inspect", "gc", "ctypes", "pickle",
                             "marshal", "pkgutil", "pydoc", "types", "code", "dill",
                             "cloudpickle", "runpy", "operator"})
"""Modules whose import opens a door to names by string, to frames or to raw memory."""
DYNAMIC_ATTRIBUTES = frozenset({"modules", "attrgetter", "methodcaller"})
ALLOWED_DUNDERS = frozenset({"__init__", "__name__", "__len__"})
REFERENCE_MODULE = "scratch"
"""The module (``mmcourse.nn.scratch``) that holds the course's reference answers."""
REFERENCE_TOOLS = frozenset({"relative_error"})
GRADER_NAMES = frozenset({"grading", "__main__"})


def forbidden_names(tests: dict) -> dict[str, list[str]]:
    """{question: dotted names its tests forbid}, read from the test source without
    running it: the string arguments of ``forbidding(...)`` and the tuples of strings
    passed to it by name (``forbidding(*_NO_CONV)``), defined in any earlier case."""
    tuples: dict[str, list[str]] = {}
    found: dict[str, list[str]] = {}
    for question, tree in _test_trees(tests):
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name):
                strings = _strings(node.value)
                if strings is not None:
                    tuples[node.targets[0].id] = strings
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id == "forbidding":
                for arg in node.args:
                    if isinstance(arg, ast.Starred) and isinstance(arg.value, ast.Name):
                        names = tuples.get(arg.value.id, [])
                    else:
                        names = _strings(arg) or []
                    found.setdefault(question, [])
                    found[question] += [n for n in names if n not in found[question]]
    return found


def _test_trees(tests: dict):
    """(question, syntax tree) of every test case that parses, in the archive's order."""
    for question, (_, cases) in tests.items():
        for source, _hidden in cases:
            try:
                yield question, ast.parse(source)
            except SyntaxError:
                continue


def reference_answers(tests: dict) -> dict[str, set[str]]:
    """{question: functions of ``mmcourse.nn.scratch`` its tests compare with}: those
    answer the question, so the learner may not call them there (its checking tool
    ``relative_error`` and the building blocks other questions use stay allowed)."""
    found: dict[str, set[str]] = {}
    for question, tree in _test_trees(tests):
        found.setdefault(question, set()).update(
            node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == REFERENCE_MODULE and node.attr not in REFERENCE_TOOLS)
    return {q: names for q, names in found.items() if names}


def _strings(node: ast.AST) -> list[str] | None:
    """The strings of a string constant or a tuple/list of them; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List)) and node.elts and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return [e.value for e in node.elts]
    return None


def key(dotted: str) -> str:
    """The word an answer may not mention for a forbidden dotted name: the function's
    name, or for a method (``pkg.Class.method``) its class."""
    parts = dotted.split(".")
    if len(parts) >= 2 and parts[-2].lstrip("_")[:1].isupper():
        return parts[-2]
    return parts[-1]


class _Uses(ast.NodeVisitor):
    """Every name, attribute, import and computed access in one cell."""

    def __init__(self, modules: set[str], references: set[str]):
        self.modules = modules  # names bound by imports anywhere in the notebook
        self.references = references  # names bound to mmcourse.nn.scratch anywhere
        self.reference_uses: set[str] = set()  # what of it is used (attribute or import)
        self.reference_reads = 0  # reads of a name bound to it
        self.reference_attribute_reads = 0  # ... as the base of an attribute
        self.words: set[str] = set()  # names and attributes mentioned (not bare own names)
        self.bare: set[str] = set()  # bare names read
        self.imported: set[str] = set()  # every part of every imported dotted name
        self.dynamic: set[str] = set()
        self.private: set[str] = set()

    def visit_Import(self, node):
        for alias in node.names:
            self._imported(alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        self._imported(node.module or "")
        for alias in node.names:
            self._imported(alias.name)
            if node.module:
                self._private_chain([*node.module.split("."), alias.name])
            if (node.module or "").split(".")[-1] == REFERENCE_MODULE \
                    and alias.name not in REFERENCE_TOOLS:
                self.reference_uses.add(alias.name)
        self.generic_visit(node)

    def _imported(self, dotted: str) -> None:
        parts = [p for p in dotted.split(".") if p]
        self.imported.update(parts)
        self.dynamic.update(p for p in parts[:1] if p in DYNAMIC_MODULES)
        self._private_chain(parts)

    def _private_chain(self, parts: list[str]) -> None:
        if any(p.startswith("_") and not p.startswith("__") for p in parts[1:]):
            self.private.add(".".join(parts))

    def visit_Name(self, node):
        self.bare.add(node.id)
        if node.id in self.references and isinstance(node.ctx, ast.Load):
            self.reference_reads += 1
        if node.id in DYNAMIC_CALLS:
            self.dynamic.add(node.id)
        self.generic_visit(node)

    def visit_Attribute(self, node):
        self.words.add(node.attr)
        base = node.value
        if (isinstance(base, ast.Name) and base.id in self.references) or (
                isinstance(base, ast.Attribute) and base.attr == REFERENCE_MODULE):
            self.reference_attribute_reads += isinstance(base, ast.Name)
            if node.attr not in REFERENCE_TOOLS:
                self.reference_uses.add(node.attr)
        if node.attr.startswith("__") and node.attr.endswith("__") \
                and node.attr not in ALLOWED_DUNDERS:
            self.dynamic.add(node.attr)
        elif node.attr in DYNAMIC_ATTRIBUTES:
            self.dynamic.add(node.attr)
        root = node
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in self.modules \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            self.private.add(f"{root.id}.….{node.attr}")
        if node.attr == "ops" and isinstance(root, ast.Name) and root.id in self.modules:
            self.private.add(f"{root.id}.ops")
        self.generic_visit(node)


def _import_bound(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
    return names


def _reference_bound(tree: ast.AST) -> set[str]:
    """Names an import binds to the reference module (``from mmcourse.nn import
    scratch``, ``import mmcourse.nn.scratch as s``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname for a in node.names
                      if a.asname and a.name.split(".")[-1] == REFERENCE_MODULE}
        elif isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names if a.name == REFERENCE_MODULE}
    return names


def python_source(source: str) -> str:
    """A notebook cell's text as Python: IPython's ``%magic`` and ``!shell`` lines
    blanked (so line numbers still match)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def _parse(source: str) -> ast.AST | None:
    try:
        return ast.parse(python_source(source))
    except SyntaxError:
        return None


def written_cells(nb, template) -> list[tuple[int, str]]:
    """(index, source) of the code cells the learner wrote or changed: those whose text
    is not the text of one of the exercise's code cells (all of them without a
    template)."""
    own = set() if template is None else {
        c.source.strip() for c in template.cells if c.cell_type == "code"}
    return [(i, c.source) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and c.source.strip() not in own]


def violations(nb, template, tests: dict, own_names: set[str] = frozenset()) -> dict[str, str]:
    """{question: why it scores 0} for the written cells of ``nb`` (see the module's
    documentation); ``own_names`` are the names the answer cells define, which the
    learner may mention bare even where they match a forbidden function's name."""
    trees = [(i, _parse(src)) for i, src in _code_cells_of(nb)]
    modules = set().union(*(_import_bound(t) for _, t in trees if t is not None))
    references = set().union(*(_reference_bound(t) for _, t in trees if t is not None))
    forbids = forbidden_names(tests)
    answers = reference_answers(tests)
    out: dict[str, str] = {}
    for index, source in written_cells(nb, template):
        tree = _parse(source)
        if tree is None:
            continue
        uses = _Uses(modules, references)
        uses.visit(tree)
        grader = _grader_reached(uses)
        for question in tests:
            if question in out:
                continue
            why = grader or _reference_use(uses, answers.get(question, set())) \
                or _forbidden_use(uses, forbids.get(question, []), own_names,
                                  bool(answers.get(question)))
            if why:
                out[question] = f"cell {index} {why}: 0 points"
    return out


def _code_cells_of(nb) -> list[tuple[int, str]]:
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def _grader_reached(uses: _Uses) -> str:
    """Why every question of the exercise scores 0 (the cell reaches the grader's own
    code), or ``""``."""
    reached = (uses.imported | uses.words | uses.bare) & GRADER_NAMES
    return f"reaches into the grader's own code ({', '.join(sorted(reached))})" if reached else ""


def _reference_use(uses: _Uses, answers: set[str]) -> str:
    """Why a question whose tests compare with the reference functions ``answers``
    scores 0 (the cell calls one, or hands the module around), or ``""``."""
    if not answers:
        return ""
    used = uses.reference_uses & answers
    if used:
        return (f"uses the course's reference implementation of this question "
                f"(mmcourse.nn.scratch: {', '.join(sorted(used))})")
    if uses.reference_reads > uses.reference_attribute_reads:  # the module as a value
        return "hands the course's reference implementations (mmcourse.nn.scratch) around"
    return ""


def _forbidden_use(uses: _Uses, forbidden: list[str], own_names: set[str],
                   has_reference: bool = False) -> str:
    """Why a question that forbids ``forbidden`` (or has a reference implementation)
    scores 0, or ``""``."""
    if not forbidden and not has_reference:
        return ""
    keys = {key(name) for name in forbidden}
    hits = (keys & (uses.words | uses.imported)) | ((keys & uses.bare) - set(own_names))
    if hits:
        return (f"mentions {', '.join(sorted(hits))}, which this question forbids "
                "(a saved reference or another name for it counts as using it)")
    if uses.private:
        return (f"reaches private library internals ({', '.join(sorted(uses.private)[:3])}), "
                "which this question's forbidden functions could be reached through")
    if uses.dynamic:
        return (f"reaches names by computation ({', '.join(sorted(uses.dynamic)[:3])}), "
                "which this question's forbidden functions could be reached through")
    return ""
