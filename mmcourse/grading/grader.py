"""Grading that never hangs and that nothing a submission touches can decide.

:func:`grade_submission` grades one notebook: its code cells run in a sandboxed child
(:mod:`.sandbox`, :mod:`.child`) under a time and a memory limit, while the hidden tests
run here in the grader against the submission's names seen through proxies over a
data-only channel (:mod:`.remote`, :mod:`.channel`). :func:`grade_folder` grades a folder
and writes a per-question CSV. A submission that is not a notebook, loops forever,
raises, exits, runs out of memory, has a syntax error, deletes or reorders cells, prints
megabytes, claims another exercise or attacks the grader is graded with a stated reason;
submitted files are only read.
"""
from __future__ import annotations

import ast
import contextlib
import csv
import json
import os
import re
import signal
import stat
import sys
import time
import traceback
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from . import hidden, isolation, remote, sandbox, static
from .exercises import repository_root
from .feedback import doctest_source
from .static import python_source

DEFAULT_TIMEOUT = 300
"""Seconds a submission may run before it is stopped and graded 0."""
GRADING_MARGIN = 300
"""Seconds the grading of one submission may take beyond twice its run's timeout
before its process is stopped (:func:`_grade_apart`)."""
MAX_NOTEBOOK = 10 * 2**20
"""Bytes of the largest submission read; a larger file is refused before it is parsed
(the chapters, with all their outputs, are under 2 MB)."""
OUTPUT_LIMIT = 1_000_000
"""Characters of cell output above which a submission is flagged as printing too much."""
_GRADER_LINE = re.compile(r"import otter|grader = otter\.Notebook\([^()]*\)"
                          r"|from mmcourse\.grading\.feedback import Notebook"
                          r"|grader = Notebook\([^()]*\)"
                          r"|grader\.(check|check_all|export)\([^()]*\)")
"""Lines of the cells that otter adds for the learner: not run when grading."""


@dataclass
class Grade:
    """The grade of one submission: per-question (score, possible), why points were lost
    or the submission could not be run, and the cells that raised: (cell index or None,
    exception name)."""

    file: str
    exercise: str
    scores: dict = field(default_factory=dict)
    reasons: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    seconds: float = 0.0
    protection: str = ""
    """"bubblewrap" or "none" (graded without the sandbox, on the instructor's word)."""

    @property
    def total(self) -> float:
        return float(sum(s for s, _ in self.scores.values()))

    @property
    def possible(self) -> float:
        return float(sum(p for _, p in self.scores.values()))

    @property
    def percent(self) -> float:
        return 100.0 * self.total / self.possible if self.possible else 0.0


def _code_cells(nb) -> list[tuple[int, str]]:
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def _grader_cell(source: str) -> bool:
    """A cell that only drives otter (``grader.check(...)`` and the like)."""
    lines = [line.strip() for line in source.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    return bool(lines) and all(_GRADER_LINE.fullmatch(line) for line in lines)


def static_reasons(nb: nbformat.NotebookNode, template: nbformat.NotebookNode | None) -> list[str]:
    """Problems visible without running: syntax errors, deleted or reordered cells
    (compared with the exercise's ``template`` by cell id)."""
    reasons = []
    for i, source in _code_cells(nb):
        try:
            ast.parse(python_source(source))
        except SyntaxError as err:
            reasons.append(f"cell {i} has a syntax error (line {err.lineno}: {err.msg})")
    if template is not None:
        want = [c.get("id") for c in template.cells]
        have = [c.get("id") for c in nb.cells]
        missing = [i for i in want if i not in have]
        if missing:
            reasons.append(f"{len(missing)} cell(s) of the exercise were deleted: {', '.join(missing)}")
        kept = [i for i in have if i in want]
        if kept != [i for i in want if i in kept]:
            reasons.append("cells of the exercise were reordered")
    return reasons


def _read_test_files(autograder: Path) -> list[dict]:
    tests = []
    with zipfile.ZipFile(autograder) as zf:
        for name in sorted(zf.namelist()):
            if name.startswith("tests/") and name.endswith(".py"):
                tree = ast.parse(zf.read(name).decode())
                for node in tree.body:
                    if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                            and node.targets[0].id == "test"):
                        tests.append(ast.literal_eval(node.value))
    return tests


def question_points(autograder: Path) -> dict:
    """Points of each question, read from the autograder's test files: {name: points}."""
    return {t["name"]: float(t["points"]) for t in _read_test_files(autograder)}



def load_tests(autograder: Path) -> dict:
    """{question: (points, [(source, hidden), ...])} from the instructor's archive."""
    out = {}
    for test in _read_test_files(autograder):
        cases = [(doctest_source(case["code"]), bool(case.get("hidden")))
                 for suite in test["suites"] for case in suite["cases"]]
        out[test["name"]] = (float(test["points"]), cases)
    return out


def _bound_names(source: str) -> set[str]:
    """Names a cell binds at its top level (functions, classes, assignments)."""
    try:
        tree = ast.parse(python_source(source))
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def is_answer_cell(cell) -> bool:
    """Whether a notebook cell is one the learner writes code in (otter's
    ``otter_answer_cell`` tag on a code cell)."""
    return cell.cell_type == "code" and "otter_answer_cell" in cell.metadata.get("tags", [])


def student_names(template: nbformat.NotebookNode) -> set[str]:
    """Names the learner's answer cells define: the tests reach these in the submission."""
    return set().union(*(_bound_names(c.source) for c in template.cells if is_answer_cell(c)))


_CONTEXTS: dict = {}


def context(template_path: Path) -> dict:
    """The exercise's own set-up, computed in the grader from the instructor's exercise
    notebook: every code cell that is neither an answer cell nor an otter cell, run in
    order. Kept for the rest of the run."""
    template_path = Path(template_path).resolve()
    key = (str(template_path), template_path.stat().st_mtime_ns)
    if key not in _CONTEXTS:
        nb = nbformat.read(template_path, as_version=4)
        ns: dict = {"__name__": "__grader__"}
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code" or is_answer_cell(cell) or _grader_cell(cell.source):
                    continue
                exec(compile(python_source(cell.source), f"<{template_path.stem} cell {i}>", "exec"), ns)
        _CONTEXTS[key] = ns
    return _CONTEXTS[key]


def _case_failure(err: BaseException, source: str, filename: str) -> str:
    """`the failing statement` → the exception, for the reasons column."""
    lineno = None
    for frame in traceback.extract_tb(err.__traceback__):
        if frame.filename == filename:
            lineno = frame.lineno
    lines = source.splitlines()
    statement = lines[lineno - 1].strip() if lineno and lineno <= len(lines) else ""
    message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
    return f"`{statement[:100]}` → {message[:160]}" if statement else message[:200]


def run_tests(session: remote.Session, tests: dict, ctx: dict, names: set[str]
              ) -> tuple[dict, list[str]]:
    """Run the hidden test cases in the grader against the submission seen through
    ``session``; return ({question: (score, possible)}, reasons). A question's points are
    shared equally by its hidden cases (by its public ones where it has none)."""
    used = set()
    for _, cases in tests.values():
        for source, _hidden in cases:
            try:
                used |= {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
            except SyntaxError:
                continue
    ns = dict(ctx)
    wanted = sorted(used & names)
    for name in wanted:
        ns.pop(name, None)
    ns.update({"hidden_seed": hidden.hidden_seed, "forbidding": hidden.forbidding,
               "in_submission": hidden.in_submission, "assert_same": hidden.assert_same})
    hidden.set_session(session)
    scores, reasons = {}, []
    try:
        ns.update(session.names(wanted))
    except remote.SubmissionError as err:
        reasons.append(f"the tests could not reach the submission: {err}")
    try:
        return _run_cases(tests, ns, scores, reasons)
    finally:
        hidden.set_session(None)


def _run_cases(tests: dict, ns: dict, scores: dict, reasons: list) -> tuple[dict, list[str]]:
    for question, (points, cases) in tests.items():
        # the hidden cases decide; the public ones ran in the learner's kernel (a question
        # without hidden cases is scored on its public ones, here)
        scored = [c for c in cases if c[1]] or cases
        passed, failure = 0, ""
        for k, (source, _) in enumerate(scored):
            filename = f"<{question} case {k}>"
            try:
                with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                    exec(compile(source, filename, "exec"), ns)
                passed += 1
            except Exception as err:  # a failed test, whatever the submission returned
                failure = failure or _case_failure(err, source, filename)
        score = points * passed / len(scored) if scored else 0.0
        scores[question] = (round(score, 6), points)
        if score < points and failure:
            reasons.append(f"{question}: {failure}")
    return scores, reasons


def _cell_reason(error: dict, memory: int) -> str | None:
    where = f"cell {error['index']}" if error["index"] is not None else "a cell"
    kind, ename, evalue = error["kind"], error["ename"], error["evalue"]
    if kind == "exit":
        code = evalue.removeprefix("exit code ")
        return f"{where} calls sys.exit({'' if code == 'None' else code}): grading went on past it"
    if kind == "os_exit":
        return f"{where} calls os._exit({evalue.removeprefix('exit code ')}): grading went on past it"
    if kind == "memory":
        return f"{where} reached the memory limit of {memory / 2**30:g} GiB ({ename})"
    if kind == "import":
        return f"{where} failed to import: {ename}: {evalue[:160]}"
    if kind == "syntax":
        return None  # reported before running
    return f"{where} raised {ename}: {evalue[:160]}"


def _end_reason(session: remote.Session, timeout: float) -> str:
    cell = getattr(session, "ended_cell", None)
    where = session.ended_where if cell is None else f"in cell {cell}"
    if session.ended == "time":
        return f"stopped after the time limit of {timeout:g} s {where} (an endless loop?)"
    if session.ended.startswith("signal"):
        number = int(session.ended.split()[1])
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else number
        why = {signal.SIGKILL: " (killed: the memory limit, or the system ran out of memory)",
               signal.SIGXCPU: " (the CPU-time limit)", signal.SIGSEGV: " (a crash)",
               signal.SIGXFSZ: " (the file-size limit)"}.get(number, "")
        text = f"the submission's process was killed by {name} {where}{why}"
    elif session.ended.startswith("exit"):
        text = f"the submission's process ended with exit code {session.ended.split()[1]} {where}"
    else:
        text = f"the sandbox stopped answering {where}: {session.ended}"
    if session.ended_where == "at start-up":
        lines = [line for line in session.stderr_tail.splitlines() if line.strip()][-1:]
        text += f" ({lines[0][:200]})" if lines else ""
    return text


def grade_submission(path: Path, autograder: Path, template: Path | None = None,
                     timeout: float = DEFAULT_TIMEOUT, memory: int = sandbox.DEFAULT_MEMORY,
                     name: str | None = None, allow_unsandboxed: bool = False) -> Grade:
    """Grade one submitted notebook against ``autograder`` (a zip from :func:`generate`).

    The submission's code cells run in a sandboxed child process
    (:mod:`mmcourse.grading.sandbox`) with a memory limit, stopped after ``timeout``
    seconds. The hidden tests run here in the grader, on inputs made here, and reach the
    submission's functions and values over a data-only channel
    (:mod:`mmcourse.grading.remote`); they decide the points (the public tests are the
    learner's, in their kernel). Points possible come from the archive; every problem
    found is listed in ``Grade.reasons``. A symbolic link or a file over
    :data:`MAX_NOTEBOOK` is refused unread. ``name`` is the row's name (default: the
    file's). Asserts must be on: the hidden tests are asserts. Without a working
    bubblewrap it raises :class:`~mmcourse.grading.sandbox.SandboxUnavailable` unless
    ``allow_unsandboxed``.
    """
    refuse_without_asserts()
    sandbox.require(allow_unsandboxed)
    autograder = Path(autograder).resolve()
    grade = Grade(name or Path(path).name, autograder.stem,
                  protection="bubblewrap" if sandbox.bwrap_works() else "none")
    tic = time.perf_counter()
    tests = load_tests(autograder)
    grade.scores = {q: (0.0, p) for q, (p, _) in tests.items()}
    nb = _read_notebook(Path(path), grade)
    if nb is not None:
        grade.reasons += _claim_reasons(nb, autograder.stem)
        tmpl = nbformat.read(template, as_version=4) if template is not None else None
        grade.reasons += static_reasons(nb, tmpl)
        ctx = context(template) if template is not None else {}
        names = student_names(tmpl) if tmpl is not None else set()
        _run_and_test(nb, tests, ctx, names, grade, timeout, memory)
        for question, why in static.violations(nb, tmpl, tests, names).items():
            grade.scores[question] = (0.0, grade.scores[question][1])
            grade.reasons.append(f"{question}: {why}")
    grade.seconds = time.perf_counter() - tic
    return grade


def refuse_without_asserts() -> None:
    """Raise when Python runs with asserts stripped (``-O``, ``PYTHONOPTIMIZE``): every
    hidden test would pass."""
    if sys.flags.optimize:
        raise RuntimeError("grading needs assert statements, and this Python strips them "
                           "(-O or PYTHONOPTIMIZE): run the grader without them")


def _refusal(path: Path) -> str | None:
    """Why ``path`` is not read at all: a symbolic link, not a regular file, or over
    :data:`MAX_NOTEBOOK` bytes; None when it may be read."""
    try:
        info = path.lstat()
    except OSError as err:
        return f"cannot be read ({type(err).__name__})"
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link, not a submitted file: not read"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file: not read"
    if info.st_size > MAX_NOTEBOOK:
        return (f"{info.st_size / 2**20:.1f} MB, over the {MAX_NOTEBOOK / 2**20:g} MB limit "
                "of a submission: not read")
    return None


def _read_notebook(path: Path, grade: Grade) -> nbformat.NotebookNode | None:
    """The submitted notebook, or None with the reason in ``grade`` when it is refused
    (:func:`_refusal`), cannot be read or is not a valid notebook. The file is opened
    without following a symbolic link."""
    refusal = _refusal(path)
    if refusal is not None:
        grade.reasons.append(refusal)
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            text = fh.read(MAX_NOTEBOOK + 1).decode("utf-8")
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # any unreadable file is graded, never crashes the run
        grade.reasons.append(f"not a readable notebook ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:200] if str(err) else ''})")
        return None
    return nb


def _claim_reasons(nb: nbformat.NotebookNode, exercise: str) -> list[str]:
    """A reason when the notebook's metadata names another exercise than ``exercise``."""
    otter = nb.metadata.get("otter")
    claimed = otter.get("assignment_name") if isinstance(otter, dict) else None
    if claimed is None or claimed == exercise:
        return []
    return [f"the notebook's metadata names exercise {str(claimed)[:60]!r}; "
            f"graded as {exercise}"]


def _run_and_test(nb: nbformat.NotebookNode, tests: dict, ctx: dict, names: set[str],
                  grade: Grade, timeout: float, memory: int) -> None:
    """Run the submission's code cells in a sandboxed child, then the hidden tests against
    it; record scores, cell errors and reasons in ``grade``."""
    cells = [(i, src) for i, src in _code_cells(nb) if not _grader_cell(src)]
    guard = sorted({n for names in static.forbidden_names(tests).values() for n in names})
    session = remote.Session(time.monotonic() + timeout, memory)
    try:
        ran = session.run_cells(cells, guard)
        for error in session.errors:
            reason = _cell_reason(error, memory)
            if reason:
                grade.reasons.append(reason)
            if error["kind"] not in ("exit", "os_exit"):
                grade.errors.append((error["index"], error["ename"]))
        if not ran:
            grade.reasons.append(_end_reason(session, timeout) + "; every question scores 0")
        else:
            scores, reasons = run_tests(session, tests, ctx, names)
            grade.scores.update({q: s for q, s in scores.items() if q in grade.scores})
            grade.reasons += reasons
            if session.ended not in (None, "closed"):
                grade.reasons.append(_end_reason(session, timeout)
                                     + "; the tests that needed it failed")
        if session.output_chars > OUTPUT_LIMIT:
            grade.reasons.append(f"printed {session.output_chars / 1e6:.1f} million characters "
                                 f"(limit {OUTPUT_LIMIT / 1e6:g} million); output ignored")
    finally:
        session.close()


def _exercise_of(path: Path, names: list[str]) -> tuple[str | None, str | None]:
    """The exercise a submission belongs to, by its file name's chapter prefix (``03_…``),
    else by its otter metadata (read only from a file :func:`_refusal` lets through); and
    a warning when the two disagree."""
    by_name = next((n for n in names if path.name.startswith(n[:3])), None)
    by_meta = None
    try:
        if _refusal(path) is not None:
            raise ValueError("not read")
        meta = json.loads(path.read_text(encoding="utf-8", errors="replace"))["metadata"]
        by_meta = meta["otter"]["assignment_name"]
    except Exception:
        pass
    if by_name is not None:
        return by_name, None
    if isinstance(by_meta, str) and by_meta in names:
        return by_meta, None
    return None, None


def grade_folder(submissions: Path, out_csv: Path | None = None, root: Path | None = None,
                 timeout: float = DEFAULT_TIMEOUT, memory: int = sandbox.DEFAULT_MEMORY,
                 allow_unsandboxed: bool = False) -> list[Grade]:
    """Grade every ``*.ipynb`` under ``submissions``; write a per-question CSV.

    Each submission is matched to its exercise by its file name's chapter prefix
    (``03_…``), else by the otter metadata in the notebook; a notebook whose metadata
    names another exercise is graded as its file name says, and flagged. The hidden tests'
    seed is drawn once for the run. The CSV has one row per submission, named by its path
    under ``submissions``: file, exercise, one column per question, total, possible,
    percent and reasons; it is written again after every submission, so a run that is
    stopped keeps the rows graded so far. Each submission is graded in a process of its
    own (:func:`_grade_apart`): one whose grading is killed or stalls costs that row
    only. Symbolically linked folders are not entered.
    Without a working bubblewrap nothing is graded unless ``allow_unsandboxed``; the CSV's
    ``protection`` column says how each row was graded.
    """
    refuse_without_asserts()
    sandbox.require(allow_unsandboxed)
    root = root or repository_root()
    autograders = root / "grading" / "autograders"
    names = sorted(p.stem for p in autograders.glob("*.zip"))
    grades = []
    hidden.grading_mode(True)
    try:
        for path in sorted(Path(submissions).rglob("*.ipynb")):
            grades.append(_grade_apart(path, Path(submissions), root, names, timeout, memory,
                                       allow_unsandboxed))
            if out_csv is not None:
                write_csv(grades, out_csv)
    finally:
        hidden.grading_mode(False)
    return grades


def _grade_apart(path: Path, folder: Path, root: Path, names: list[str], timeout: float,
                 memory: int, allow_unsandboxed: bool) -> Grade:
    """:func:`_grade_one` in a process of its own (:func:`isolation.apart`): when that
    process is killed or stalls, the row says so and the run goes on. The exercise's
    set-up (:func:`context`) is computed here first, so each copy starts with it."""
    name = str(path.relative_to(folder))
    exercise, _ = _exercise_of(path, names)
    if exercise is not None:
        template = root / "exercises" / f"{exercise}.ipynb"
        with contextlib.suppress(Exception):  # a failing set-up is reported by the copy
            if template.exists():
                context(template)
    try:
        found = isolation.apart(lambda: asdict(_grade_one(path, folder, root, names, timeout,
                                                          memory, allow_unsandboxed)),
                                seconds=2 * timeout + GRADING_MARGIN)
    except isolation.Failed as err:
        points = {} if exercise is None else question_points(
            root / "grading" / "autograders" / f"{exercise}.zip")
        return Grade(name, exercise or "?", {q: (0.0, p) for q, p in points.items()},
                     [f"the grader could not finish this submission: {err}"],
                     protection="bubblewrap" if sandbox.bwrap_works() else "none")
    found["scores"] = {q: tuple(s) for q, s in found["scores"].items()}
    found["errors"] = [tuple(e) for e in found["errors"]]
    return Grade(**found)


def _grade_one(path: Path, folder: Path, root: Path, names: list[str], timeout: float,
               memory: int, allow_unsandboxed: bool) -> Grade:
    """The grade of the submission at ``path`` under ``folder``, named by its path there;
    a failure of its grading costs this submission only."""
    name = str(path.relative_to(folder))
    exercise, _ = _exercise_of(path, names)
    if exercise is None:
        return Grade(name, "?", reasons=["cannot tell which exercise this is"])
    autograder = root / "grading" / "autograders" / f"{exercise}.zip"
    points = question_points(autograder)
    template = root / "exercises" / f"{exercise}.ipynb"
    try:
        return grade_submission(path, autograder, template if template.exists() else None,
                                timeout, memory, name=name, allow_unsandboxed=allow_unsandboxed)
    except Exception as err:  # one submission never stops the run
        return Grade(name, exercise, {q: (0.0, p) for q, p in points.items()},
                     [f"grading failed: {type(err).__name__}: {str(err)[:200]}"])


def write_csv(grades: list[Grade], out_csv: Path) -> None:
    """One row per submission; question columns are ``<exercise>:<question>``."""
    columns = sorted({f"{g.exercise}:{q}" for g in grades for q in g.scores})
    partial = Path(out_csv).with_name(Path(out_csv).name + ".part")
    with open(partial, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "exercise", *columns, "total", "possible", "percent",
                         "seconds", "protection", "reasons"])
        for g in grades:
            cells = [g.scores.get(c.split(":", 1)[1], ("", ""))[0] if c.startswith(g.exercise + ":")
                     else "" for c in columns]
            writer.writerow([_cell(g.file), _cell(g.exercise), *cells, g.total, g.possible,
                             f"{g.percent:.1f}", f"{g.seconds:.1f}", g.protection,
                             _cell(" | ".join(g.reasons))])
    os.replace(partial, out_csv)


def printable(text: str) -> str:
    """``text`` with every control character (terminal escapes, newlines, NUL) shown as
    ``?``, so a reason or file name cannot drive the terminal or break a row."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))


def _cell(text: str) -> str:
    """A CSV text cell that a spreadsheet shows as text: printable, and with a leading
    ``'`` where it would start a formula (``=``, ``+``, ``-``, ``@``)."""
    text = printable(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def summary_table(grades: list[Grade]) -> str:
    """A printable summary: one line per submission with its score and reasons."""
    lines = [f"{'file':<36} {'exercise':<22} {'score':>11}  reasons"]
    for g in grades:
        score = f"{g.total:g}/{g.possible:g}"
        lines.append(f"{printable(g.file)[:36]:<36} {printable(g.exercise)[:22]:<22} "
                     f"{score:>11}  {printable('; '.join(g.reasons)) or '-'}")
    return "\n".join(lines)
