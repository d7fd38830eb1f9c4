"""Exercises from one source, and grading that never hangs.

The solved masters live in ``solutions/`` as notebooks in otter-grader's assign format
(each written as a jupytext script ``solutions/NN_name.py`` and executed into
``solutions/NN_name.ipynb``). :func:`generate` runs ``otter assign`` on each master and
writes

* ``exercises/NN_name.ipynb`` — the student notebook: solutions replaced by ``...``,
  public tests embedded for ``grader.check``, hidden tests absent;
* ``grading/autograders/NN_name.zip`` — the autograder with public and hidden tests;
* ``grading/solved/NN_name.ipynb`` — the student notebook with the solutions filled in,
  a reference submission that must score full marks.

Nothing in ``exercises/`` is edited by hand. :func:`grade_submission` grades one notebook
in a child process with a time limit; :func:`grade_folder` grades a folder and writes a
per-question CSV. A submission that is not a notebook, loops forever, raises, calls
``sys.exit``, has a syntax error, deletes or reorders cells, or prints megabytes is graded
with a stated reason; submitted files are only read, never modified.
"""
from __future__ import annotations

import ast
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

DEFAULT_TIMEOUT = 300
"""Seconds a submission may run before it is stopped and graded 0."""
OUTPUT_LIMIT = 1_000_000
"""Characters of cell output above which a submission is flagged as printing too much."""
_GRADER_CELLS = ("grader.check(", "otter.Notebook(")
"""Cells that otter adds or drives; their errors follow from the submission's own."""
_EXIT_CALL = re.compile(r"\b(sys\.exit|os\._exit|exit|quit)\s*\(")


def repository_root() -> Path:
    """The course repository that holds ``solutions/`` (the package's parent folder)."""
    return Path(__file__).resolve().parents[2]


def masters(root: Path | None = None) -> list[Path]:
    """The solved master notebooks ``solutions/NN_*.ipynb``, sorted."""
    return sorted((root or repository_root()).joinpath("solutions").glob("[0-9][0-9]_*.ipynb"))


def _run(cmd: list[str], timeout: float, cwd: Path | None = None, log: Path | None = None
         ) -> tuple[int | None, str]:
    """Run ``cmd`` in its own process group; kill the whole group after ``timeout`` s.

    Returns (exit code or None on timeout, the last 4,000 characters of its output).
    Output goes to a file, so a command that prints without end cannot fill memory.
    """
    with tempfile.TemporaryDirectory() as tmp:
        log = log or Path(tmp) / "output.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = None
        with open(log, "rb") as fh:
            fh.seek(max(0, log.stat().st_size - 4000))
            tail = fh.read().decode("utf-8", "replace")
    return code, tail


def _normalise_student(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """Give the student notebook stable cell ids (``NN_name-03``) and no outputs."""
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name}-{i:02d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def assign(master: Path, out_dir: Path, timeout: float = 600) -> tuple[Path, Path, Path]:
    """Run ``otter assign`` on ``master``; return (student notebook, autograder zip,
    solved notebook)."""
    dist = out_dir / master.stem
    shutil.rmtree(dist, ignore_errors=True)
    code, tail = _run([sys.executable, "-m", "otter", "assign", "-v", str(master.resolve()),
                       str(dist.resolve())], timeout, cwd=master.parent)
    if code != 0:
        raise RuntimeError(f"otter assign failed on {master.name}:\n{tail}")
    student = dist / "student" / master.name
    solved = dist / "autograder" / master.name
    zips = sorted((dist / "autograder").glob("*-autograder_*.zip"))
    if not student.exists() or not solved.exists() or not zips:
        raise RuntimeError(f"otter assign wrote no student notebook or autograder for {master}")
    return student, zips[-1], solved


def generate(root: Path | None = None, out: Path | None = None,
             only: list[str] | None = None) -> list[str]:
    """Regenerate every exercise and autograder from the masters (or the masters named in
    ``only``); return their names.

    ``out`` (default: the repository) receives ``exercises/``, ``grading/autograders/``
    and ``grading/solved/``.
    """
    root = root or repository_root()
    out = out or root
    for folder in ("exercises", "grading/autograders", "grading/solved"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    names = []
    with tempfile.TemporaryDirectory() as tmp:
        for master in masters(root):
            if only and master.stem not in only:
                continue
            student, zip_path, solved = assign(master, Path(tmp))
            for src, dst in ((student, "exercises"), (solved, "grading/solved")):
                nb = _normalise_student(nbformat.read(src, as_version=4), master.stem)
                nbformat.write(nb, out / dst / master.name)
            shutil.copyfile(zip_path, out / "grading" / "autograders" / f"{master.stem}.zip")
            names.append(master.stem)
    return names


def _zip_contents(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist() if n.startswith("tests/")
                or n == "otter_config.json"}


def _student_view(path: Path) -> list:
    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source, c.get("id"), c.metadata.get("tags", []))
            for c in nb.cells] + [json.dumps(nb.metadata.get("otter", {}), sort_keys=True)]


def stale(root: Path | None = None) -> list[str]:
    """Generated files that differ from what the masters produce now (empty: up to date)."""
    root = root or repository_root()
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        names = generate(root, fresh)
        committed = {p.stem for p in (root / "exercises").glob("*.ipynb")}
        problems += [f"exercises/{n}.ipynb has no master" for n in sorted(committed - set(names))]
        for name in names:
            zp = f"grading/autograders/{name}.zip"
            for nb in (f"exercises/{name}.ipynb", f"grading/solved/{name}.ipynb"):
                if not (root / nb).exists() or _student_view(root / nb) != _student_view(fresh / nb):
                    problems.append(f"{nb} is out of date")
            if not (root / zp).exists() or _zip_contents(root / zp) != _zip_contents(fresh / zp):
                problems.append(f"{zp} is out of date")
    return problems


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


def static_reasons(nb: nbformat.NotebookNode, template: nbformat.NotebookNode | None) -> list[str]:
    """Problems visible without running: syntax errors, exit calls, deleted or reordered
    cells (compared with the exercise's ``template`` by cell id)."""
    reasons = []
    for i, source in _code_cells(nb):
        python = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                           for line in source.splitlines())
        try:
            tree = ast.parse(python)
        except SyntaxError as err:
            reasons.append(f"cell {i} has a syntax error (line {err.lineno}: {err.msg})")
            continue
        calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        exits = sorted(c for c in calls if _EXIT_CALL.fullmatch(c + "("))
        if exits:
            reasons.append(f"cell {i} calls {', '.join(exits)}(): grading went on past it")
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


def question_points(autograder: Path) -> dict:
    """Points of each question, read from the autograder's test files: {name: points}."""
    points = {}
    with zipfile.ZipFile(autograder) as zf:
        for name in sorted(zf.namelist()):
            if name.startswith("tests/") and name.endswith(".py"):
                tree = ast.parse(zf.read(name).decode())
                for node in tree.body:
                    if isinstance(node, ast.Assign) and node.targets[0].id == "test":
                        test = ast.literal_eval(node.value)
                        points[test["name"]] = float(test["points"])
    return points


def grade_submission(path: Path, autograder: Path, template: Path | None = None,
                     timeout: float = DEFAULT_TIMEOUT) -> Grade:
    """Grade one submitted notebook against ``autograder`` (a zip from :func:`generate`).

    The submission is copied to a temporary folder and run there by
    :mod:`mmcourse.grading.worker` in a child process that is killed after ``timeout``
    seconds. Questions keep 0 points when the run fails; every problem found is listed in
    ``Grade.reasons``.
    """
    path, autograder = Path(path).resolve(), Path(autograder).resolve()
    grade = Grade(path.name, autograder.stem)
    tic = time.perf_counter()
    points = question_points(autograder)
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # any unreadable file is graded, never crashes the run
        grade.scores = {q: (0.0, p) for q, p in points.items()}
        grade.reasons.append(f"not a readable notebook ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:200] if str(err) else ''})")
        grade.seconds = time.perf_counter() - tic
        return grade
    tmpl = nbformat.read(template, as_version=4) if template is not None else None
    grade.reasons += static_reasons(nb, tmpl)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        copy = work / f"{autograder.stem}.ipynb"
        shutil.copyfile(path, copy)
        summary_path = work / "summary.json"
        code, tail = _run([sys.executable, "-m", "mmcourse.grading.worker", str(autograder),
                           str(copy), str(summary_path)], timeout, cwd=work)
        summary = (json.loads(summary_path.read_text())
                   if code == 0 and summary_path.exists() else None)
    if summary is None:
        grade.scores = {q: (0.0, p) for q, p in points.items()}
        if code is None:
            grade.reasons.append(f"stopped after the time limit of {timeout:g} s "
                                 "(an endless loop?); every question scores 0")
        else:
            last = [line for line in tail.splitlines() if line.strip()][-1:] or ["no output"]
            grade.reasons.append(f"the grader could not run it: {last[0][:200]}")
    else:
        grade.scores = {q: (r["score"], r["possible"]) for q, r in summary["questions"].items()}
        for q, r in summary["questions"].items():
            if r["score"] < r["possible"] and r["failure"]:
                grade.reasons.append(f"{q}: {r['failure']}")
        sources = [c.source for c in nb.cells]
        for err in summary["errors"]:
            if any(marker in err["source"] for marker in _GRADER_CELLS):
                continue
            index = sources.index(err["source"]) if err["source"] in sources else None
            grade.errors.append((index, err["ename"]))
            where = f"cell {index}" if index is not None else "a cell"
            grade.reasons.append(f"{where} raised {err['ename']}: {err['evalue'][:160]}")
        if summary["output_chars"] > OUTPUT_LIMIT:
            grade.reasons.append(f"printed {summary['output_chars'] / 1e6:.1f} million characters "
                                 f"(limit {OUTPUT_LIMIT / 1e6:g} million); output ignored")
    grade.seconds = time.perf_counter() - tic
    return grade


def _exercise_of(path: Path, names: list[str]) -> str | None:
    """The exercise a submission belongs to: by the otter metadata, else by file name."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8", errors="replace"))["metadata"]
        name = meta["otter"]["assignment_name"]
        if name in names:
            return name
    except Exception:
        pass
    return next((n for n in names if path.name.startswith(n[:3])), None)


def grade_folder(submissions: Path, out_csv: Path | None = None, root: Path | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> list[Grade]:
    """Grade every ``*.ipynb`` under ``submissions``; write a per-question CSV.

    Each submission is matched to its exercise by the otter metadata in the notebook or
    by its file name's chapter prefix (``03_…``). The CSV has one row per submission:
    file, exercise, one column per question, total, possible, percent and reasons.
    """
    root = root or repository_root()
    autograders = root / "grading" / "autograders"
    names = sorted(p.stem for p in autograders.glob("*.zip"))
    grades = []
    for path in sorted(Path(submissions).rglob("*.ipynb")):
        exercise = _exercise_of(path, names)
        if exercise is None:
            grades.append(Grade(path.name, "?", reasons=["cannot tell which exercise this is"]))
            continue
        template = root / "exercises" / f"{exercise}.ipynb"
        grades.append(grade_submission(path, autograders / f"{exercise}.zip",
                                       template if template.exists() else None, timeout))
    if out_csv is not None:
        write_csv(grades, out_csv)
    return grades


def write_csv(grades: list[Grade], out_csv: Path) -> None:
    """One row per submission; question columns are ``<exercise>:<question>``."""
    columns = sorted({f"{g.exercise}:{q}" for g in grades for q in g.scores})
    with open(out_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "exercise", *columns, "total", "possible", "percent",
                         "seconds", "reasons"])
        for g in grades:
            cells = [g.scores.get(c.split(":", 1)[1], ("", ""))[0] if c.startswith(g.exercise + ":")
                     else "" for c in columns]
            writer.writerow([g.file, g.exercise, *cells, g.total, g.possible,
                             f"{g.percent:.1f}", f"{g.seconds:.1f}", " | ".join(g.reasons)])


def summary_table(grades: list[Grade]) -> str:
    """A printable summary: one line per submission with its score and reasons."""
    lines = [f"{'file':<36} {'exercise':<22} {'score':>11}  reasons"]
    for g in grades:
        score = f"{g.total:g}/{g.possible:g}"
        lines.append(f"{g.file[:36]:<36} {g.exercise[:22]:<22} {score:>11}  "
                     f"{'; '.join(g.reasons) or '-'}")
    return "\n".join(lines)
