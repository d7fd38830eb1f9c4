"""The learner's ``grader``: public tests with one readable line per failure.

An exercise's first cells are the Colab install cell and

    from mmcourse.grading.feedback import Notebook
    grader = Notebook("01_cnn.ipynb")

``grader.check("q1_output_size")`` runs that question's public tests (stored by
``otter assign`` in the notebook's metadata) in the learner's namespace, statement by
statement, and reports the first failing statement of each test case in one line:
what was called, what came back and what was expected, for example
``conv_output_size(28, 3) returned None; expected 26``. A plain ``assert`` is explained
from its expression (a comparison, ``isinstance``, ``and``, …); an ``assert`` with a
message shows the message. otter's own ``grader.check`` prints doctest's trace of every
example instead (kilobytes per question, never the returned value), and on Colab it
cannot read tests kept in the notebook's metadata; this checker reads them from the
notebook file, or on Colab from the open notebook.

The hidden tests never reach the learner: the instructor grades with
``python -m mmcourse grade``.
"""
from __future__ import annotations

import ast
import builtins
import glob
import html
import json
import operator
import os
import sys

__all__ = ["Notebook", "Result", "explain_case"]

_OPS = {ast.Eq: (operator.eq, ""), ast.NotEq: (operator.ne, "not "), ast.Lt: (operator.lt, "< "),
        ast.LtE: (operator.le, "≤ "), ast.Gt: (operator.gt, "> "), ast.GtE: (operator.ge, "≥ "),
        ast.Is: (operator.is_, "the object "), ast.IsNot: (operator.is_not, "not the object "),
        ast.In: (lambda a, b: a in b, "one of "), ast.NotIn: (lambda a, b: a not in b, "none of ")}
WIDTH = 120
"""Characters of a value shown in a message."""


def short(value) -> str:
    """A one-line description of ``value`` (tensors and arrays by shape when large)."""
    if value is Ellipsis:
        return "... (not written yet)"
    kind = type(value).__module__.split(".")[0]
    if kind in ("torch", "numpy") and hasattr(value, "shape") and hasattr(value, "dtype"):
        shape = tuple(value.shape)
        dtype = str(value.dtype).removeprefix("torch.")
        size = 1
        for n in shape:
            size *= n
        if 0 < size <= 8:
            name = "tensor" if kind == "torch" else "array"
            return f"{name}({value.tolist()}, {dtype})"
        return f"a {'tensor' if kind == 'torch' else 'array'} of shape {shape} ({dtype})"
    text = " ".join(repr(value).split())
    return text if len(text) <= WIDTH else text[:WIDTH - 1] + "…"


class _Raised(Exception):
    """An expression raised: the message already names it."""


def _source(node, text: str) -> str:
    return " ".join((ast.get_source_segment(text, node) or ast.unparse(node)).split())


def _inner_call(node):
    """The call a method or attribute is taken of: ``f(x)`` in ``f(x).shape``."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
        if isinstance(node, ast.Call):
            return node
    return None


def _eval(node, text: str, env: dict, made: dict | None = None):
    try:
        return eval(compile(ast.Expression(node), "<test>", "eval"), env)
    except Exception as err:
        why = f"{type(err).__name__}: {' '.join(str(err).split())[:WIDTH]}".rstrip(": ")
        base = node
        while isinstance(base, (ast.Attribute, ast.Subscript, ast.Call)):
            base = base.func if isinstance(base, ast.Call) else base.value
        if made and isinstance(base, ast.Name) and base.id in made and base is not node:
            raise _Raised(f"{made[base.id]} returned {short(env.get(base.id))}, so "
                          f"{_source(node, text)} raised {why}") from None
        inner = _inner_call(node)
        if inner is not None:
            try:
                value = eval(compile(ast.Expression(inner), "<test>", "eval"), env)
            except Exception as err2:
                why2 = f"{type(err2).__name__}: {' '.join(str(err2).split())[:WIDTH]}".rstrip(": ")
                raise _Raised(f"{_source(inner, text)} raised {why2}") from None
            raise _Raised(f"{_source(inner, text)} returned {short(value)}, so "
                          f"{_source(node, text)} raised {why}") from None
        raise _Raised(f"{_source(node, text)} raised {why}") from None


def _describe(node, value, text: str, made: dict) -> str:
    src = _source(node, text)
    if isinstance(node, ast.Call):
        return f"{src} returned {short(value)}"
    if isinstance(node, ast.Name) and node.id in made:
        return f"{made[node.id]} returned {short(value)}"
    said = f"{src} is {short(value)}"
    base = node
    while isinstance(base, (ast.Attribute, ast.Subscript)):
        base = base.value
    if isinstance(base, ast.Name) and base.id in made:
        said += f" (with {base.id} = {made[base.id]})"
    return said


def _names(node, env: dict, made: dict | None = None) -> str:
    """``name = value`` for the plain variables an expression reads (``call returned
    value`` for a variable the test assigned from a call)."""
    made = made or {}
    seen = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in env and sub.id not in seen:
            value = env[sub.id]
            if not (callable(value) or type(value).__name__ == "module"):
                seen.append(sub.id)
    return ", ".join(f"{made[n]} returned {short(env[n])}" if n in made
                     else f"{n} = {short(env[n])}" for n in seen[:4])


def _explain(node, text: str, env: dict, made: dict) -> str | None:
    """None when ``node`` is true in ``env``; else why not, in one line."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        for operand in node.values:
            why = _explain(operand, text, env, made)
            if why:
                return why
        return None
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _OPS:
        return _explain_comparison(node, text, env, made)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "isinstance" and len(node.args) == 2):
        return _explain_isinstance(node, text, env, made)
    if (isinstance(node, ast.Call) and len(node.args) >= 2
            and _source(node.func, text).split(".")[-1] in ("allclose", "equal", "isclose")):
        return _explain_closeness(node, text, env, made)
    value = _eval(node, text, env, made)
    if value:
        return None
    names = _names(node, env, made)
    return f"{_source(node, text)} is {short(value)}" + (f" ({names})" if names else "")


def _explain_comparison(node: ast.Compare, text: str, env: dict, made: dict) -> str | None:
    """Why ``a <op> b`` is false: the value found and the one expected."""
    left = _eval(node.left, text, env, made)
    right = _eval(node.comparators[0], text, env, made)
    op, word = _OPS[type(node.ops[0])]
    try:
        ok = bool(op(left, right))
    except Exception as err:
        return (f"{_describe(node.left, left, text, made)}; comparing it with "
                f"{short(right)} raised {type(err).__name__}")
    if ok:
        return None
    want = (_source(node.comparators[0], text)
            if isinstance(node.comparators[0], (ast.Constant, ast.Tuple, ast.List, ast.Set))
            else short(right))
    said = f"{_describe(node.left, left, text, made)}; expected {word}{want}"
    base = node.left
    while isinstance(base, (ast.Attribute, ast.Subscript)):
        base = base.value
    simple = isinstance(base, ast.Name) or (
        isinstance(node.left, ast.Call) and isinstance(node.left.func, ast.Name)
        and node.left.func.id in env and not hasattr(builtins, node.left.func.id)
        and all(isinstance(a, ast.Constant) for a in node.left.args))
    names = "" if simple else _names(node.left, env, made)
    return said + (f" ({names})" if names else "")


def _explain_isinstance(node: ast.Call, text: str, env: dict, made: dict) -> str | None:
    """Why ``isinstance(x, kinds)`` is false: the type found and the ones expected."""
    value = _eval(node.args[0], text, env, made)
    kinds = _eval(node.args[1], text, env, made)
    if isinstance(value, kinds):
        return None
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    names = " or ".join(k.__name__ for k in kinds)
    return (f"{_describe(node.args[0], value, text, made)} "
            f"({type(value).__name__}); expected a {names}")


def _explain_closeness(node: ast.Call, text: str, env: dict, made: dict) -> str | None:
    """Why ``allclose``/``equal``/``isclose(got, want)`` is false: another shape, or the
    largest difference."""
    got = _eval(node.args[0], text, env, made)
    want = _eval(node.args[1], text, env, made)
    try:
        value = _eval(node, text, env, made)
        ok = bool(value)
    except _Raised as err:
        return f"{_describe(node.args[0], got, text, made)}; expected {short(want)} ({err})"
    if ok:
        return None
    shape = getattr(got, "shape", None)
    if shape is not None and getattr(want, "shape", shape) != shape:
        return (f"{_describe(node.args[0], got, text, made)}; expected a shape of "
                f"{tuple(want.shape)}")
    gap = ""
    try:
        gap = f" (largest difference {float((got - want).abs().max()):.3g})"
    except Exception:
        pass
    return f"{_describe(node.args[0], got, text, made)}; expected {short(want)}{gap}"


def explain_case(source: str, env: dict) -> str | None:
    """Run a public test case ``source`` in ``env`` statement by statement; return None
    when it passes, else one line about the first statement that failed."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        return f"the test cannot run: {err.msg}"
    made: dict = {}
    for stmt in tree.body:
        try:
            if isinstance(stmt, ast.Assert):
                why = _explain(stmt.test, source, env, made)
                if why:
                    if stmt.msg is not None:
                        return " ".join(str(_eval(stmt.msg, source, env)).split())
                    return why
                continue
            exec(compile(ast.Module([stmt], []), "<test>", "exec"), env)
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name) and isinstance(stmt.value, ast.Call)):
                made[stmt.targets[0].id] = _source(stmt.value, source)
        except _Raised as err:
            return str(err)
        except Exception as err:
            return (f"{_source(stmt, source)[:WIDTH]} raised {type(err).__name__}: "
                    f"{' '.join(str(err).split())[:WIDTH]}").rstrip(": ")
    return None


def doctest_source(code: str) -> str:
    """The Python source of an otter doctest case (``>>>`` and ``...`` lines)."""
    lines = []
    for line in code.splitlines():
        if line.startswith((">>> ", "... ")):
            lines.append(line[4:])
        elif line.rstrip() in (">>>", "..."):
            lines.append("")
    return "\n".join(lines) + "\n"


class Result:
    """The outcome of :meth:`Notebook.check`: one line per question."""

    def __init__(self, lines: list[tuple[str, str | None]]):
        self.lines = lines  # (question, None when passed else why)

    @property
    def passed(self) -> bool:
        return all(why is None for _, why in self.lines)

    def __str__(self) -> str:
        return "\n".join(f"{q}: ✅ passed the public tests" if why is None else f"{q}: ❌ {why}"
                         for q, why in self.lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return "".join(
            f"<p><code>{html.escape(q)}</code>: "
            + ("✅ passed the public tests" if why is None
               else f"<span style='color:#b00'>❌</span> {html.escape(why)}") + "</p>"
            for q, why in self.lines)


class Notebook:
    """``grader`` in an exercise: ``grader.check(question)``, ``grader.check_all()``."""

    def __init__(self, nb_path: str | None = None):
        self.nb_path = nb_path
        self._tests: dict | None = None

    def _notebook(self) -> dict:
        # the named file; else (a renamed copy) a notebook here that holds this exercise
        wanted = os.path.splitext(os.path.basename(self.nb_path or ""))[0]
        candidates = [self.nb_path] if self.nb_path else []
        candidates += sorted(glob.glob("*.ipynb"))
        for k, path in enumerate(candidates):
            if not (path and os.path.isfile(path)):
                continue
            try:
                with open(path, encoding="utf-8") as fh:
                    otter = json.load(fh).get("metadata", {}).get("otter", {})
            except (OSError, ValueError):
                continue
            if otter.get("tests") and (k == 0 and self.nb_path or not wanted
                                       or otter.get("assignment_name") == wanted):
                with open(path, encoding="utf-8") as fh:
                    return json.load(fh)
        if "google.colab" in sys.modules:  # the open notebook, as Colab holds it
            from google.colab import _message  # type: ignore

            return _message.blocking_request("get_ipynb", timeout_sec=60)["ipynb"]
        raise FileNotFoundError(f"cannot find the exercise notebook {self.nb_path!r} with its "
                                "tests; run the notebook from the folder that holds it")

    def tests(self) -> dict:
        """{question: [public test source, ...]} from the notebook's metadata."""
        if self._tests is None:
            meta = self._notebook().get("metadata", {}).get("otter", {}).get("tests", {})
            self._tests = {q: [doctest_source(case["code"]) for suite in t["suites"]
                               for case in suite["cases"] if not case.get("hidden")]
                           for q, t in meta.items()}
        return self._tests

    def _run(self, question: str, env: dict) -> str | None:
        tests = self.tests()
        if question not in tests:
            return f"no question {question!r} in this exercise (it has {', '.join(tests)})"
        for source in tests[question]:
            why = explain_case(source, env)
            if why:
                return why
        return None

    def check(self, question: str, global_env: dict | None = None) -> Result:
        """Run ``question``'s public tests against the calling notebook's names."""
        env = global_env if global_env is not None else sys._getframe(1).f_globals
        return Result([(question, self._run(question, env))])

    def check_all(self, global_env: dict | None = None) -> Result:
        """Run every question's public tests."""
        env = global_env if global_env is not None else sys._getframe(1).f_globals
        return Result([(q, self._run(q, env)) for q in self.tests()])
