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
import inspect
import json
import operator
import os
import re
import sys
import textwrap
import traceback

__all__ = ["Notebook", "Result", "explain_case"]

_OPS = {ast.Eq: (operator.eq, ""), ast.NotEq: (operator.ne, "not "), ast.Lt: (operator.lt, "< "),
        ast.LtE: (operator.le, "≤ "), ast.Gt: (operator.gt, "> "), ast.GtE: (operator.ge, "≥ "),
        ast.Is: (operator.is_, "the object "), ast.IsNot: (operator.is_not, "not the object "),
        ast.In: (lambda a, b: a in b, "one of "), ast.NotIn: (lambda a, b: a not in b, "none of ")}
WIDTH = 120
"""Characters of a value shown in a message."""
LINE = 160
"""Characters of a whole feedback line."""


def short(value) -> str:
    """A one-line description of ``value`` (tensors and arrays by shape when large)."""
    if value is Ellipsis:
        return "... (not written yet)"
    if isinstance(value, float):
        return f"{value:.4g}"
    kind = type(value).__module__.split(".")[0]
    if kind in ("torch", "numpy") and hasattr(value, "shape") and hasattr(value, "dtype"):
        shape = tuple(value.shape)
        dtype = str(value.dtype).removeprefix("torch.")
        size = 1
        for n in shape:
            size *= n
        if 0 < size <= 8:
            name = "tensor" if kind == "torch" else "array"
            return f"{name}({_rounded(value.tolist())}, {dtype})"
        return f"a {'tensor' if kind == 'torch' else 'array'} of shape {shape} ({dtype})"
    text = " ".join(repr(value).split())
    return text if len(text) <= WIDTH else text[:WIDTH - 1] + "…"


def _rounded(values):
    """Nested lists of numbers with floats shown to 4 significant digits."""
    if isinstance(values, list):
        return "[" + ", ".join(_rounded(v) for v in values) + "]"
    return f"{values:.4g}" if isinstance(values, float) else repr(values)


class _Raised(Exception):
    """An expression raised: the message already names it."""


def _source(node, text: str) -> str:
    return " ".join((ast.get_source_segment(text, node) or ast.unparse(node)).split())


def _argument(node, index: int, callee, text: str) -> str:
    """How one argument of a call is shown: a short literal or the learner's own variable
    as written, else the parameter's name in the learner's function (never a test's
    private ``_name``)."""
    src = _source(node, text)
    if isinstance(node, ast.Name) and not node.id.startswith("_"):
        return src
    if not any(isinstance(n, ast.Name) and n.id.startswith("_") for n in ast.walk(node)) \
            and len(src) <= 16:
        return src
    try:
        params = list(inspect.signature(callee).parameters)
        return params[index] if isinstance(index, int) else index
    except (TypeError, ValueError, IndexError):
        return "…"


def _learner_function(callee, env: dict) -> bool:
    """Whether ``callee`` was written in the learner's notebook (not a library's)."""
    if not (inspect.isfunction(callee) or inspect.isclass(callee)):
        return False
    if getattr(callee, "__globals__", None) is env:
        return True
    module = getattr(callee, "__module__", None) or ""
    root = module.split(".")[0]
    if root in ("__main__", env.get("__name__")):
        return True
    origin = getattr(sys.modules.get(root), "__file__", None) or ""
    return bool(origin) and root != "mmcourse" and "site-packages" not in origin \
        and not origin.startswith(sys.base_prefix)


def _learner_call(node, text: str, env: dict) -> str | None:
    """The first call of a learner's function in ``node``, as :func:`_call_text` shows it."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            try:
                callee = eval(compile(ast.Expression(sub.func), "<test>", "eval"), env)
            except Exception:
                continue
            if _learner_function(callee, env):
                return _call_text(sub, text, env)
    return None


def _call_text(node: ast.Call, text: str, env: dict) -> str:
    """``f(x, k=3)`` for a call in a test, its arguments shown by :func:`_argument`."""
    try:
        callee = eval(compile(ast.Expression(node.func), "<test>", "eval"), env)
    except Exception:
        callee = None
    args = [_argument(a, i, callee, text) for i, a in enumerate(node.args)]
    args += [f"{k.arg}={_argument(k.value, k.arg, callee, text)}" if k.arg else "**…"
             for k in node.keywords]
    return f"{_source(node.func, text)}({', '.join(args)})"


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
            raise _Raised(_unusable(made[base.id][0], env.get(base.id), err)) from None
        inner = _inner_call(node)
        if inner is not None:
            try:
                value = eval(compile(ast.Expression(inner), "<test>", "eval"), env)
            except Exception as err2:
                why2 = f"{type(err2).__name__}: {' '.join(str(err2).split())[:WIDTH]}".rstrip(": ")
                raise _Raised(f"{_call_text(inner, text, env)} raised {why2}") from None
            raise _Raised(_unusable(_call_text(inner, text, env), value, err)) from None
        raise _Raised(f"{_source(node, text)} raised {why}") from None


def _unusable(call: str, value, err: BaseException) -> str:
    """What to say when the test could not use what ``call`` returned."""
    if value is None:
        return f"{call} returned None: is a `return` missing?"
    return f"{call} returned {short(value)}, which the test cannot use ({type(err).__name__})"


def _said(made: dict, name: str) -> str:
    """``f(x) returned`` (``f(x) gave result[1] =`` for one of several values it
    returned, ``gave`` for a value the test made from it)."""
    text, verb, part = made[name]
    return f"{text} gave result{part} =" if part else f"{text} {verb}"


def _describe(node, value, text: str, made: dict, env: dict | None = None) -> str:
    """What an expression of the test stands for, in the learner's terms, and its value."""
    env = env or {}
    src = _source(node, text)
    if isinstance(node, ast.Name) and node.id in made:
        return f"{_said(made, node.id)} {short(value)}"
    base = node
    while isinstance(base, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(base, ast.Call):
            if _learner_call(base, text, env) == _call_text(base, text, env):
                break
            base = base.func
        else:
            base = base.value
    if base is node and isinstance(node, ast.Call):
        return f"{_call_text(node, text, env)} returned {short(value)}"
    if isinstance(base, ast.Name) and base.id in made:
        return f"{made[base.id][0]} gave result{made[base.id][2]}{src[len(base.id):]} = {short(value)}"
    if isinstance(base, ast.Call):
        rest = src[len(_source(base, text)):]
        return f"{_call_text(base, text, env)} gave result{rest} = {short(value)}"
    if _private(src):
        named = _names(node, env, made)
        return f"{named}, which gives {short(value)}" if named else short(value)
    return f"{src} is {short(value)}"


def _private(src: str) -> bool:
    """Whether a piece of test source names one of the test's own ``_variables``."""
    return re.search(r"(?<![\w.])_[A-Za-z]\w*", src) is not None


def _names(node, env: dict, made: dict | None = None) -> str:
    """``name = value`` for the plain variables an expression reads (``call returned
    value`` for a variable the test assigned from a call)."""
    made = made or {}
    seen = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in env and sub.id not in seen \
                and (sub.id in made or not sub.id.startswith("_")):
            value = env[sub.id]
            if not (callable(value) or type(value).__name__ == "module"):
                seen.append(sub.id)
    return ", ".join(f"{_said(made, n)} {short(env[n])}" if n in made
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
    if _private(_source(node, text)):
        return f"{names}: not what the test expects" if names else "a check of the test failed"
    return f"{_source(node, text)} is {short(value)}" + (f" ({names})" if names else "")


def _explain_comparison(node: ast.Compare, text: str, env: dict, made: dict) -> str | None:
    """Why ``a <op> b`` is false: the value found and the one expected."""
    left = _eval(node.left, text, env, made)
    right = _eval(node.comparators[0], text, env, made)
    op, word = _OPS[type(node.ops[0])]
    try:
        ok = bool(op(left, right))
    except Exception as err:
        return (f"{_describe(node.left, left, text, made, env)}; comparing it with "
                f"{short(right)} raised {type(err).__name__}")
    if ok:
        return None
    want = (_source(node.comparators[0], text)
            if isinstance(node.comparators[0], (ast.Constant, ast.Tuple, ast.List, ast.Set))
            else short(right))
    said = f"{_describe(node.left, left, text, made, env)}; expected {word}{want}"
    base = node.left
    while isinstance(base, (ast.Attribute, ast.Subscript)):
        base = base.value
    simple = isinstance(base, ast.Name) or (
        isinstance(node.left, ast.Call) and isinstance(node.left.func, ast.Name)
        and node.left.func.id in env and not hasattr(builtins, node.left.func.id)
        and all(isinstance(a, ast.Constant) for a in node.left.args))
    names = "" if simple or _private(_source(node.left, text)) else _names(node.left, env, made)
    return said + (f" ({names})" if names else "")


def _explain_isinstance(node: ast.Call, text: str, env: dict, made: dict) -> str | None:
    """Why ``isinstance(x, kinds)`` is false: the type found and the ones expected."""
    value = _eval(node.args[0], text, env, made)
    kinds = _eval(node.args[1], text, env, made)
    if isinstance(value, kinds):
        return None
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    names = " or ".join(k.__name__ for k in kinds)
    kind = "" if value is None else f" ({type(value).__name__})"
    return f"{_describe(node.args[0], value, text, made, env)}{kind}; expected a {names}"


def _explain_closeness(node: ast.Call, text: str, env: dict, made: dict) -> str | None:
    """Why ``allclose``/``equal``/``isclose(got, want)`` is false: another shape, or the
    largest difference."""
    got = _eval(node.args[0], text, env, made)
    want = _eval(node.args[1], text, env, made)
    try:
        value = _eval(node, text, env, made)
        ok = bool(value)
    except _Raised as err:
        return f"{_describe(node.args[0], got, text, made, env)}; expected {short(want)} ({err})"
    if ok:
        return None
    shape = getattr(got, "shape", None)
    if shape is not None and getattr(want, "shape", shape) != shape:
        return (f"{_describe(node.args[0], got, text, made, env)}; expected a shape of "
                f"{tuple(want.shape)}")
    gap = ""
    try:
        gap = f" (largest difference {float((got - want).abs().max()):.3g})"
    except Exception:
        pass
    return f"{_describe(node.args[0], got, text, made, env)}; expected {short(want)}{gap}"


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
            why = _run_statement(stmt, source, env, made)
        except _Raised as err:
            return _line(str(err))
        if why:
            return _line(why)
    return None


def _line(text: str) -> str:
    """``text`` on one line of at most :data:`LINE` characters."""
    text = " ".join(text.split())
    return text if len(text) <= LINE else text[:LINE - 1] + "…"


def _run_statement(stmt, source: str, env: dict, made: dict) -> str | None:
    """Run one statement of a test; None when it holds, else why not."""
    if isinstance(stmt, ast.Assert):
        why = _explain(stmt.test, source, env, made)
        if why and stmt.msg is not None:
            return str(_eval(stmt.msg, source, env))
        return why
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) \
            and _source(stmt.value.func, source).split(".")[-1] == "assert_same":
        return _explain_same(stmt.value, source, env, made)
    try:
        exec(compile(ast.Module([stmt], []), "<test>", "exec"), env)
    except AssertionError as err:  # an assert inside a loop or a block
        if str(err):
            return str(err)
        failed = _failed_assert(stmt, err)
        return (_explain(failed.test, source, env, made) if failed is not None else None) \
            or "a check inside a loop of the test failed"
    except Exception as err:
        return _statement_error(stmt, source, env, made, err)
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        _note_made(stmt.targets[0], stmt.value, source, env, made)
    return None


def _note_made(target, value, source: str, env: dict, made: dict) -> None:
    """Remember that the test's variable(s) ``target`` hold what a learner's call gave:
    {name: (call, "returned" or "gave", "[i]" for the i-th of several values)}."""
    call = _learner_call(value, source, env)
    if call is None:
        return
    direct = isinstance(value, ast.Call) and call == _call_text(value, source, env)
    if isinstance(target, ast.Name):
        made[target.id] = (call, "returned" if direct else "gave", "")
    elif isinstance(target, (ast.Tuple, ast.List)) and direct:
        for i, element in enumerate(target.elts):
            if isinstance(element, ast.Name):
                made[element.id] = (call, "gave", f"[{i}]")


def _explain_same(call: ast.Call, text: str, env: dict, made: dict) -> str | None:
    """Why ``assert_same(got, want, ...)`` fails: what was got, then what differs."""
    try:
        eval(compile(ast.Expression(call), "<test>", "eval"), env)
    except AssertionError as err:
        got = _eval(call.args[0], text, env, made) if call.args else None
        said = _describe(call.args[0], got, text, made, env) if call.args else "the answer"
        return f"{said}: {err}"
    except Exception as err:
        raise _Raised(f"the check raised {type(err).__name__}") from None
    return None


def _failed_assert(stmt, err: BaseException):
    """The ``assert`` of ``stmt`` that raised ``err`` (by its line in the test)."""
    line = next((f.lineno for f in reversed(traceback.extract_tb(err.__traceback__))
                 if f.filename == "<test>"), None)
    return next((n for n in ast.walk(stmt) if isinstance(n, ast.Assert) and n.lineno == line),
                None)


def _statement_error(stmt, source: str, env: dict, made: dict, err: BaseException) -> str:
    """Why a statement of the test raised: the learner's function raised, or returned
    something the test cannot use."""
    why = f"{type(err).__name__}: {' '.join(str(err).split())[:WIDTH]}".rstrip(": ")
    for node in ast.walk(stmt):
        if not isinstance(node, ast.Call):
            continue
        try:
            callee = eval(compile(ast.Expression(node.func), "<test>", "eval"), env)
        except Exception:
            continue
        if getattr(callee, "__module__", None) in ("__main__", None) \
                and not isinstance(callee, type) and _raised_inside(callee, err):
            return f"{_call_text(node, source, env)} raised {why}"
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and node.id in made:
            return _unusable(made[node.id][0], env.get(node.id), err)
    calls = [n for n in ast.walk(stmt) if isinstance(n, ast.Call)]
    if calls:
        try:
            value = eval(compile(ast.Expression(calls[0]), "<test>", "eval"), env)
        except Exception:
            return f"{_call_text(calls[0], source, env)} raised {why}"
        return _unusable(_call_text(calls[0], source, env), value, err)
    return f"the test raised {why}"


def _raised_inside(function, err: BaseException) -> bool:
    """Whether ``err`` was raised while ``function``'s own code ran."""
    code = getattr(function, "__code__", None)
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


def doctest_source(code: str) -> str:
    """The Python source of an otter doctest case (``>>>`` and ``...`` lines)."""
    lines = []
    for line in code.splitlines():
        if line.startswith((">>> ", "... ")):
            lines.append(line[4:])
        elif line.rstrip() in (">>>", "..."):
            lines.append("")
    return "\n".join(lines) + "\n"


def _blank_code() -> bytes:
    def blank():
        ...
    return blank.__code__.co_code


_BLANK = _blank_code()


def is_blank(value) -> bool:
    """Whether an answer is still the exercise's placeholder: ``...``, or a function (or
    a class whose methods are all functions) whose body is only ``...``."""
    if value is Ellipsis:
        return True
    if isinstance(value, type):
        methods = [getattr(v, "__func__", v) for v in vars(value).values()]
        methods = [m for m in methods if inspect.isfunction(m)]
        return bool(methods) and all(is_blank(m) for m in methods)
    code = getattr(value, "__code__", None)
    if code is None or code.co_code != _BLANK or code.co_names:
        return False
    try:  # `...` and `return None` compile alike: the source tells them apart
        tree = ast.parse(textwrap.dedent(inspect.getsource(value)))
    except (OSError, TypeError, SyntaxError):
        return True
    body = tree.body[0].body if tree.body and hasattr(tree.body[0], "body") else []
    return all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                           and (s.value.value is Ellipsis or isinstance(s.value.value, str)))
               for s in body) and bool(body)


def _bound(source: str) -> list[str]:
    """Names a cell binds at its top level, in order."""
    try:
        tree = ast.parse("\n".join("" if line.lstrip().startswith(("%", "!")) else line
                                   for line in source.splitlines()))
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return list(dict.fromkeys(names))


def _checked(source: str) -> list[str]:
    """The questions a cell checks: ``grader.check("q1")`` calls (comments ignored)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "check" and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)]


def answer_names(nb: dict) -> dict[str, list[str]]:
    """{question: names its answer cells define}: the answer cells (otter's
    ``otter_answer_cell`` tag) between one ``grader.check(...)`` cell and the next."""
    found, pending = {}, []
    for cell in nb.get("cells", []):
        source = "".join(cell.get("source", ""))
        if cell.get("cell_type") != "code":
            continue
        if "otter_answer_cell" in cell.get("metadata", {}).get("tags", []):
            pending += _bound(source)
        for question in _checked(source):
            found[question], pending = pending, []
    return found


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
        self._answers: dict | None = None

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
        if self._answers is None:
            self._answers = answer_names(self._notebook())
        names = self._answers.get(question, [])
        missing = [n for n in names if n not in env]
        if missing:
            return f"run the cell that defines {', '.join(missing)} first"
        blank = [n for n in names if is_blank(env[n])]
        if blank:
            return _line(f"not answered yet: {', '.join(blank)} still "
                         f"{'holds' if len(blank) == 1 else 'hold'} the placeholder `...`")
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
