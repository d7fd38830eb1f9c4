"""Exercises and grading: generated files current, solutions full marks, untouched
exercises zero, nothing leaked, hostile submissions graded with a reason in bounded time."""
from __future__ import annotations

import copy
import csv
import hashlib
import re
from pathlib import Path

import nbformat
import pytest

from mmcourse.__main__ import main
from mmcourse.grading import grade_folder, masters, repository_root, stale

ROOT = repository_root()
NAMES = [m.stem for m in masters()]


def test_every_master_has_an_exercise_and_an_autograder():
    assert NAMES, "solutions/ holds no master"
    for name in NAMES:
        assert (ROOT / "exercises" / f"{name}.ipynb").exists()
        assert (ROOT / "grading" / "autograders" / f"{name}.zip").exists()


def test_generated_files_are_up_to_date():
    assert stale() == []


@pytest.fixture(scope="module")
def solved_grades():
    return {g.exercise: g for g in grade_folder(ROOT / "grading" / "solved")}


@pytest.fixture(scope="module")
def untouched_grades():
    return {g.exercise: g for g in grade_folder(ROOT / "exercises")}


@pytest.mark.parametrize("name", NAMES)
def test_solution_scores_full_marks(solved_grades, name):
    grade = solved_grades[name]
    assert grade.possible > 0 and grade.total == grade.possible, grade.reasons
    assert not grade.errors, grade.reasons


@pytest.mark.parametrize("name", NAMES)
def test_untouched_exercise_scores_zero_and_fails_only_in_answer_cells(untouched_grades, name):
    grade = untouched_grades[name]
    assert grade.possible > 0 and grade.total == 0, grade.scores
    nb = nbformat.read(ROOT / "exercises" / f"{name}.ipynb", as_version=4)
    answer_cells = {i for i, c in enumerate(nb.cells)
                    if "otter_answer_cell" in c.metadata.get("tags", [])}
    assert len(answer_cells) >= 3
    for cell, ename in grade.errors:
        assert cell in answer_cells, f"cell {cell} raised {ename} but asks for no code"


def _secret_lines(master: Path) -> list[str]:
    """Solution lines and hidden-test lines of a master notebook."""
    nb = nbformat.read(master, as_version=4)
    secrets, in_solution, in_tests = [], False, False
    for cell in nb.cells:
        first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        if cell.cell_type == "raw":
            in_solution = {"# BEGIN SOLUTION": True, "# END SOLUTION": False}.get(first, in_solution)
            in_tests = {"# BEGIN TESTS": True, "# END TESTS": False}.get(first, in_tests)
            continue
        lines = cell.source.splitlines()
        if in_tests and re.search(r"\bhidden\b", first, re.IGNORECASE):
            secrets += lines[1:]
        if in_solution:
            inside = False
            for line in lines:
                if line.strip() == "# BEGIN SOLUTION":
                    inside = True
                elif line.strip() == "# END SOLUTION":
                    inside = False
                elif inside or line.rstrip().endswith("# SOLUTION"):
                    secrets.append(line.replace("# SOLUTION", ""))
    public = {line.strip() for cell in nb.cells if cell.cell_type == "code"
              for line in cell.source.splitlines()} - {s.strip() for s in secrets}
    exercise = ROOT / "exercises" / master.name
    visible = {line.strip() for cell in nbformat.read(exercise, as_version=4).cells
               if "otter_answer_cell" not in cell.metadata.get("tags", [])
               for line in cell.source.splitlines()} if exercise.exists() else set()
    # a line also written in the learner-facing cells (a shared continuation line such
    # as "dtype=torch.float64)") is not a secret
    return [s.strip() for s in secrets
            if len(s.strip()) > 12 and s.strip() not in public | visible]


@pytest.mark.parametrize("master", masters(), ids=NAMES)
def test_no_solution_or_hidden_test_in_exercises(master):
    secrets = _secret_lines(master)
    assert secrets, "the master has solutions and hidden tests"
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "exercises").glob("*.ipynb"))
    text = text.replace("\\n", "\n").replace('\\"', '"')
    lines = {re.sub(r'^(>>>|\.\.\.)\s?', "", line.strip().strip('",').strip())
             for line in text.splitlines()}
    leaked = [s for s in secrets if s in lines or any(s in line for line in lines if len(s) > 40)]
    assert not leaked, leaked


HOSTILE = {
    "endless_loop": lambda nb, i: nb.cells.insert(i, nbformat.v4.new_code_cell("while True:\n    pass")),
    "sys_exit": lambda nb, i: nb.cells.insert(i, nbformat.v4.new_code_cell("import sys\nsys.exit(1)")),
    "raises": lambda nb, i: nb.cells.insert(i, nbformat.v4.new_code_cell("raise RuntimeError('boom')")),
    "syntax_error": lambda nb, i: nb.cells[i].__setitem__("source", nb.cells[i].source + "\ndef broken(:\n"),
    "deleted_cells": lambda nb, i: nb.cells.pop(i),
    "reordered_cells": lambda nb, i: nb.cells.insert(1, nb.cells.pop(i)),
    "prints_megabytes": lambda nb, i: nb.cells.insert(i, nbformat.v4.new_code_cell("print('x' * 5_000_000)")),
    "os_exit": lambda nb, i: nb.cells.insert(i, nbformat.v4.new_code_cell("import os\nos._exit(3)")),
    "failed_import": lambda nb, i: nb.cells.insert(i, nbformat.v4.new_code_cell("import no_such_module_here")),
    "killed": lambda nb, i: nb.cells.insert(i, nbformat.v4.new_code_cell(
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")),
}
EXPECTED = {
    "endless_loop": "time limit",
    "sys_exit": "calls sys.exit",
    "raises": "raised RuntimeError: boom",
    "syntax_error": "syntax error",
    "deleted_cells": "were deleted",
    "reordered_cells": "reordered",
    "prints_megabytes": "million characters",
    "os_exit": "calls os._exit(3): grading went on past it",
    "failed_import": "failed to import: ModuleNotFoundError",
    "killed": "killed by SIGKILL in cell",
    "not_json": "not a readable notebook",
    "empty_file": "not a readable notebook",
}
TIMEOUT = 60


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    name = NAMES[0]
    solved = nbformat.read(ROOT / "grading" / "solved" / f"{name}.ipynb", as_version=4)
    exercise = nbformat.read(ROOT / "exercises" / f"{name}.ipynb", as_version=4)
    first_answer = next(i for i, c in enumerate(exercise.cells)
                        if "otter_answer_cell" in c.metadata.get("tags", []))
    folder = tmp_path_factory.mktemp("submissions")
    for case, change in HOSTILE.items():
        nb = copy.deepcopy(solved)
        change(nb, first_answer)
        nbformat.write(nb, folder / f"{name[:3]}{case}.ipynb")
    (folder / f"{name[:3]}not_json.ipynb").write_text("{ this is not json")
    (folder / f"{name[:3]}empty_file.ipynb").write_bytes(b"")
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    out = folder.parent / "grades.csv"
    assert main(["grade", str(folder), "--csv", str(out), "--timeout", str(TIMEOUT)]) == 0
    with open(out, newline="", encoding="utf-8") as fh:
        rows = {row["file"]: row for row in csv.DictReader(fh)}
    return folder, digests, rows


@pytest.mark.parametrize("case", list(EXPECTED))
def test_hostile_submission_graded_with_a_reason(hostile, case):
    _, _, rows = hostile
    row = next(r for f, r in rows.items() if case in f)
    assert EXPECTED[case] in row["reasons"], row["reasons"]
    assert float(row["seconds"]) < TIMEOUT + 120  # killed at the limit, plus start-up
    if case in ("endless_loop", "not_json", "empty_file", "killed"):
        assert float(row["total"]) == 0
        assert float(row["possible"]) > 0  # from the instructor's archive, always
    if case in ("sys_exit", "os_exit", "failed_import", "raises", "prints_megabytes",
                "reordered_cells"):
        assert float(row["total"]) == float(row["possible"])  # the answers themselves are right
    if case in ("deleted_cells", "syntax_error"):
        assert 0 <= float(row["total"]) < float(row["possible"])
    if case == "endless_loop":
        assert "in cell" in row["reasons"]  # names the cell that ran too long


def test_submissions_are_never_modified(hostile):
    folder, digests, _ = hostile
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()} == digests


def test_grade_command_rejects_a_missing_folder(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().out
