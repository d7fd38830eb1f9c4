"""Exercises and grading: generated files current, solutions full marks, untouched
exercises zero, nothing leaked (hostile submissions: tests/test_grading_hostile.py)."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from mmcourse.__main__ import main
from mmcourse.grading import grade_folder, is_answer_cell, masters, repository_root, stale

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
                    if is_answer_cell(c)}
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


def test_grade_command_rejects_a_missing_folder(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().out
