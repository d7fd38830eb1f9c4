"""Exercises from one source: the solved masters generate everything else.

The solved masters live in ``solutions/`` as notebooks in otter-grader's assign format
(each written as a jupytext script ``solutions/NN_name.py`` and executed into
``solutions/NN_name.ipynb``). :func:`generate` runs ``otter assign`` on each master and
writes

* ``exercises/NN_name.ipynb`` — the student notebook: solutions replaced by ``...``,
  public tests embedded for ``grader.check``, hidden tests absent;
* ``grading/autograders/NN_name.zip`` — the autograder with public and hidden tests;
* ``grading/solved/NN_name.ipynb`` — the student notebook with the solutions filled in,
  a reference submission that must score full marks.

Nothing in ``exercises/`` is edited by hand; :func:`stale` lists what differs from what
the masters produce now.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat

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
