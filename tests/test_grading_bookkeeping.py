"""Grading's bookkeeping under a careless instructor and a determined student: links are
not followed, rows are named by their path, the CSV cannot start a formula, nothing printed
can drive the terminal, oversized notebooks are refused unread, the CSV grows as the run
goes, and a grader with asserts stripped refuses to grade."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time

import nbformat
import pytest

from mmcourse.__main__ import main
from mmcourse.grading import masters, repository_root
from mmcourse.grading.grader import MAX_NOTEBOOK, _cell, grade_folder, printable

ROOT = repository_root()
NAME = masters()[0].stem
UNTOUCHED = ROOT / "exercises" / f"{NAME}.ipynb"
SOLVED = ROOT / "grading" / "solved" / f"{NAME}.ipynb"


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A folder of careless and hostile submissions, graded once by the command."""
    top = tmp_path_factory.mktemp("bookkeeping")
    folder = top / "submissions"
    for student in ("alice", "bob"):
        (folder / student).mkdir(parents=True)
        shutil.copy(UNTOUCHED, folder / student / f"{NAME}.ipynb")
    (folder / f"{NAME[:3]}link.ipynb").symlink_to(SOLVED)  # the solved notebook, linked
    (top / "elsewhere").mkdir()
    shutil.copy(SOLVED, top / "elsewhere" / f"{NAME}.ipynb")
    (folder / "carol").symlink_to(top / "elsewhere")  # a linked folder
    shutil.copy(UNTOUCHED, folder / f"={NAME[:3]}HYPERLINK.ipynb")
    shutil.copy(UNTOUCHED, folder / f"{NAME[:3]}\x1b[31mred.ipynb")
    huge = nbformat.read(UNTOUCHED, as_version=4)
    huge.cells.append(nbformat.v4.new_code_cell("x = '" + "a" * (MAX_NOTEBOOK + 10) + "'"))
    nbformat.write(huge, folder / f"{NAME[:3]}huge.ipynb")
    out = top / "grades.csv"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if not p.is_symlink()}
    assert main(["grade", str(folder), "--csv", str(out), "--timeout", "60"]) == 0
    return folder, out, _rows(out), before


def test_rows_are_named_by_their_path_under_the_folder(graded):
    _, _, rows, _ = graded
    assert f"alice/{NAME}.ipynb" in rows and f"bob/{NAME}.ipynb" in rows
    assert float(rows[f"alice/{NAME}.ipynb"]["total"]) == 0


def test_a_linked_notebook_or_folder_is_refused_unread(graded):
    _, _, rows, _ = graded
    link = rows[f"{NAME[:3]}link.ipynb"]
    assert float(link["total"]) == 0 and float(link["possible"]) > 0
    assert "symbolic link" in link["reasons"]
    assert not [f for f in rows if f.startswith("carol")], "a linked folder is not entered"


def test_csv_cells_cannot_start_a_formula_and_names_hold_no_control_character(graded):
    _, out, rows, _ = graded
    assert f"'={NAME[:3]}HYPERLINK.ipynb" in rows
    assert f"{NAME[:3]}?[31mred.ipynb" in rows
    assert "\x1b" not in out.read_text(encoding="utf-8")
    assert _cell("-1+2") == "'-1+2" and _cell("@SUM(A1)") == "'@SUM(A1)" and _cell("ok") == "ok"
    assert printable("a\x1b[2Jb\nc\x00") == "a?[2Jb?c?"


def test_an_oversized_notebook_is_refused_before_it_is_parsed(graded):
    _, _, rows, _ = graded
    huge = rows[f"{NAME[:3]}huge.ipynb"]
    assert float(huge["total"]) == 0 and "MB limit" in huge["reasons"]
    assert float(huge["seconds"]) < 5


def test_nothing_submitted_is_changed(graded):
    folder, _, _, before = graded
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if not p.is_symlink()} == before


def test_the_csv_grows_as_the_run_goes(tmp_path, monkeypatch):
    import mmcourse.grading.grader as grader

    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("a", "b"):
        shutil.copy(UNTOUCHED, folder / f"{NAME[:3]}{name}.ipynb")
    out = tmp_path / "grades.csv"
    seen = []
    original = grader._grade_apart

    def spy(path, *args):
        seen.append(sorted(_rows(out)) if out.exists() else [])
        return original(path, *args)

    monkeypatch.setattr(grader, "_grade_apart", spy)
    grade_folder(folder, out, timeout=60)
    assert seen == [[], [f"{NAME[:3]}a.ipynb"]]
    assert sorted(_rows(out)) == [f"{NAME[:3]}a.ipynb", f"{NAME[:3]}b.ipynb"]


def test_a_grading_process_killed_or_stalled_costs_its_submission_only(tmp_path, monkeypatch):
    """The grader's side of one submission dies (as under the out-of-memory killer) or
    never ends: that row says so, the other submissions are graded, the CSV is whole."""
    import signal

    import mmcourse.grading.grader as grader

    folder = tmp_path / "three"
    folder.mkdir()
    for name in ("a_killed", "b_fine", "c_stalls"):
        shutil.copy(UNTOUCHED, folder / f"{NAME[:3]}{name}.ipynb")
    original = grader._grade_one

    def fragile(path, *args):
        if "killed" in path.name:
            os.kill(os.getpid(), signal.SIGKILL)
        if "stalls" in path.name:
            time.sleep(600)
        return original(path, *args)

    monkeypatch.setattr(grader, "_grade_one", fragile)
    monkeypatch.setattr(grader, "GRADING_MARGIN", 4)
    out = tmp_path / "grades.csv"
    tic = time.monotonic()
    grades = grade_folder(folder, out, timeout=3)
    assert time.monotonic() - tic < 200
    rows = _rows(out)
    assert sorted(rows) == sorted(f"{NAME[:3]}{n}.ipynb" for n in ("a_killed", "b_fine", "c_stalls"))
    assert "killed by SIGKILL" in rows[f"{NAME[:3]}a_killed.ipynb"]["reasons"]
    assert "ran past 10 s" in rows[f"{NAME[:3]}c_stalls.ipynb"]["reasons"]
    assert "could not finish" not in rows[f"{NAME[:3]}b_fine.ipynb"]["reasons"]
    possible = sum(grader.question_points(ROOT / "grading" / "autograders" / f"{NAME}.zip").values())
    assert all(float(r["possible"]) == possible and float(r["total"]) == 0 for r in rows.values())
    assert len(grades) == 3


def test_a_grader_with_asserts_stripped_refuses_to_grade(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(UNTOUCHED, folder / f"{NAME}.ipynb")
    env = dict(os.environ, PYTHONOPTIMIZE="1")
    done = subprocess.run([sys.executable, "-m", "mmcourse", "grade", str(folder)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert "assert statements" in done.stderr
    assert not (tmp_path / "one-grades.csv").exists()


def test_each_row_says_how_it_was_graded(graded):
    from mmcourse.grading import sandbox

    _, _, rows, _ = graded
    want = "bubblewrap" if sandbox.bwrap_works() else "none"
    assert rows[f"alice/{NAME}.ipynb"]["protection"] == want


def test_without_bubblewrap_nothing_is_graded_unless_the_instructor_asks(tmp_path, monkeypatch,
                                                                          capsys):
    from mmcourse.grading import sandbox

    monkeypatch.setattr(sandbox, "bwrap_works", lambda: False)
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(UNTOUCHED, folder / f"{NAME}.ipynb")
    out = tmp_path / "grades.csv"
    assert main(["grade", str(folder), "--csv", str(out)]) == 2
    err = capsys.readouterr().err
    assert "apt install bubblewrap" in err and "--no-sandbox" in err and not out.exists()
    with pytest.raises(sandbox.SandboxUnavailable):
        grade_folder(folder)
    assert main(["grade", str(folder), "--csv", str(out), "--no-sandbox", "--timeout", "60"]) == 0
    row = _rows(out)[f"{NAME}.ipynb"]
    assert row["protection"] == "none" and float(row["total"]) == 0


def test_a_virtual_environment_reached_through_a_link_still_grades_in_bubblewrap(tmp_path):
    from mmcourse.grading import sandbox

    if not sandbox.bwrap_works():
        assert not os.environ.get("CI"), sandbox.protection()
        pytest.skip(f"bubblewrap is not available here: {sandbox.protection()}")
    link = tmp_path / "venv"
    link.symlink_to(os.path.realpath(sys.prefix))
    done = subprocess.run(
        [str(link / "bin" / os.path.basename(sys.executable)), "-c",
         "from mmcourse.grading import sandbox; print(sandbox.protection())"],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bubblewrap"), done.stdout
