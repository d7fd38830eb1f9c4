"""Grading hostile submissions: each is graded with a reason in bounded time, and none
is modified. A module of its own, so that its minute-long time-limit case runs beside
the other grading tests (pytest-xdist distributes modules)."""
from __future__ import annotations

import copy
import csv
import hashlib

import nbformat
import pytest

from mmcourse.__main__ import main
from mmcourse.grading import is_answer_cell, masters, repository_root

ROOT = repository_root()
NAMES = [m.stem for m in masters()]


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
TIMEOUT = 30


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    name = NAMES[0]
    solved = nbformat.read(ROOT / "grading" / "solved" / f"{name}.ipynb", as_version=4)
    exercise = nbformat.read(ROOT / "exercises" / f"{name}.ipynb", as_version=4)
    first_answer = next(i for i, c in enumerate(exercise.cells)
                        if is_answer_cell(c))
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
