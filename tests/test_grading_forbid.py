"""Answers that dodge "do not use library function X", and the checks that stop them.

A forbidden function reached through a reference saved before the test, by a computed
name, through a private module (``torch._VF``), through the course's own reference
implementation, or by switching off the grader's forbid hook in the child: each scores 0
on the question that forbids it, with a reason, while the learner's other answers keep
their points. The static check (:mod:`mmcourse.grading.static`) is tested on sources,
the guards set up before the first cell (:class:`mmcourse.grading.forbid.Guards`) in this
process, and both together by grading real submissions built from the solved exercises.
"""
from __future__ import annotations

import copy
import csv

import nbformat
import pytest
import torch
import torch.nn.functional as F

from mmcourse.__main__ import main
from mmcourse.grading import grader, repository_root, static
from mmcourse.grading.forbid import Guards

ROOT = repository_root()


def _exercise(name: str):
    """(tests, template, solved notebook, the answer cells' names) of one exercise."""
    tests = grader.load_tests(ROOT / "grading" / "autograders" / f"{name}.zip")
    template = nbformat.read(ROOT / "exercises" / f"{name}.ipynb", as_version=4)
    solved = nbformat.read(ROOT / "grading" / "solved" / f"{name}.ipynb", as_version=4)
    return tests, template, solved, grader.student_names(template)


def _answer_index(nb, first_line: str) -> int:
    return next(i for i, c in enumerate(nb.cells)
                if c.cell_type == "code" and c.source.startswith(first_line))


def _with(solved, replace: dict[str, str] = (), added: str | None = None):
    """A copy of ``solved`` with the answer cells that start with each key replaced by its
    value, and ``added`` as a new code cell after the set-up cell."""
    nb = copy.deepcopy(solved)
    for first_line, source in dict(replace).items():
        nb.cells[_answer_index(nb, first_line)].source = source
    if added is not None:
        setup = next(i for i, c in enumerate(nb.cells)
                     if c.cell_type == "code" and "import torch" in c.source)
        nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(added))
    return nb


CONV = "def conv2d_unfold(x, weight, bias=None, stride=1, padding=0):\n"
POOL = "def max_pool_2x2(x):\n"
LSTM = "def lstm_step(x, h, c, W, U, b):\n"
CASES = {
    "saved_reference": ("01_cnn", {CONV: CONV + "    return _conv(x, weight, bias, stride, padding)"},
                        "_conv = F.conv2d", {"q2_conv2d": "mentions conv2d"}),
    "computed_name": ("01_cnn", {CONV: CONV + "    return getattr(F, 'conv' + '2d')(x, weight, bias, "
                                           "stride, padding)"}, None,
                      {"q2_conv2d": "by computation", "q3_max_pool": "by computation"}),
    "reference_implementation": (
        "01_cnn", {CONV: CONV + "    return scratch.conv2d(x, weight, bias, stride=stride, "
                                "padding=padding)",
                   POOL: POOL + "    return scratch.max_pool2d(x, 2)"}, None,
        {"q2_conv2d": "reference implementation", "q3_max_pool": "reference implementation"}),
    "patched_hook": ("01_cnn", {CONV: CONV + "    return F.conv2d(x, weight, bias, stride, padding)"},
                     "import mmcourse.grading.forbid as _f\n"
                     "_f.forbid = lambda names: (lambda: None)\n"
                     "import __main__\n__main__.Guards = lambda names=(): None",
                     "every question: reaches into the grader's own code"),
    "private_module": ("02_rnn", {LSTM: LSTM + "    return torch._VF.lstm_cell(x, [h, c], W, U, b, "
                                            "torch.zeros_like(b))"}, None,
                       # torch._VF also holds the library's RNN and GRU cells, which the
                       # reference implementations of q2-q4 are compared with
                       {"q5_lstm_step": "lstm_cell", "q2_rnn_step": "private library internals",
                        "q3_last_state": "private library internals",
                        "q4_gru_step": "private library internals"}),
}


# --------------------------------------------------------------------- static check
@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "grading" / "autograders").glob("*.zip")))
def test_solved_and_untouched_exercises_break_no_rule(name):
    tests, template, solved, own = _exercise(name)
    assert static.violations(solved, template, tests, own) == {}
    assert static.violations(template, template, tests, own) == {}


def test_the_forbidden_names_are_read_from_the_tests_including_named_tuples():
    forbids = static.forbidden_names(_exercise("02_rnn")[0])
    assert "torch.lstm_cell" in forbids["q5_lstm_step"]
    assert "mmcourse.nn.scratch.LSTMCell.forward" in forbids["q5_lstm_step"]
    assert static.forbidden_names(_exercise("01_cnn")[0])["q2_conv2d"] == [
        "torch.nn.functional.conv2d", "torch.conv2d"]
    assert static.key("torch.nn.LSTMCell.forward") == "LSTMCell"
    assert static.key("torch.nn.functional.conv2d") == "conv2d"


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bypass_is_found_in_the_source(case):
    name, replace, added, expected = CASES[case]
    tests, template, solved, own = _exercise(name)
    found = static.violations(_with(solved, replace, added), template, tests, own)
    if isinstance(expected, str):  # every question
        assert set(found) == set(tests) and all("grader's own code" in r for r in found.values())
    else:
        assert set(found) == set(expected), found
        for question, words in expected.items():
            assert words in found[question], found[question]


def test_a_docstring_or_an_own_function_named_like_a_forbidden_one_is_not_a_use():
    tests, template, solved, own = _exercise("01_cnn")
    source = (CONV + '    """Like F.conv2d, with unfold."""\n'
              + solved.cells[_answer_index(solved, CONV)].source.split("\n", 1)[1])
    assert static.violations(_with(solved, {CONV: source}), template, tests, own) == {}


def test_a_bare_mention_of_a_name_the_answer_cells_define_is_the_learners_own():
    """Were an answer function named like a forbidden one (``conv2d``), the learner's
    calls of it are theirs; an attribute or an import of the library's is not."""
    tests, template, solved, own = _exercise("01_cnn")
    own = own | {"conv2d"}
    mine = "def conv2d(x, w):\n    return conv2d_unfold(x, w)\n\ny = conv2d(image, sobel)"
    assert static.violations(_with(solved, {}, mine), template, tests, own) == {}
    for theirs in ("from torch.nn.functional import conv2d", "y = F.conv2d(image, sobel)"):
        assert "q2_conv2d" in static.violations(_with(solved, {}, theirs), template, tests, own)


# --------------------------------------------------------------------- runtime guards
def test_a_reference_taken_before_the_guard_is_refused_while_forbidden():
    before = F.conv2d
    guards = Guards(["torch.nn.functional.conv2d"])
    try:
        saved = F.conv2d  # what a submission's cell would take, after the guard is set
        x, w = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3)
        assert torch.equal(saved(x, w), before(x, w))  # allowed outside a test
        with guards.forbidding(["torch.nn.functional.conv2d", "torch.conv2d"]):
            with pytest.raises(RuntimeError, match="may not call"):
                saved(x, w)
            with pytest.raises(RuntimeError, match="may not call"):
                torch.conv2d(x, w)  # not guarded from the start: replaced for the block
        assert torch.equal(saved(x, w), before(x, w))
        assert torch.equal(torch.conv2d(x, w), before(x, w))
    finally:
        F.conv2d = before


def test_a_misspelled_guard_is_an_error():
    with pytest.raises(LookupError, match="conv2dd"):
        Guards(["torch.nn.functional.conv2dd"])


# --------------------------------------------------------------------- graded end to end
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bypasses")
    for case, (name, replace, added, _) in CASES.items():
        nbformat.write(_with(_exercise(name)[2], replace, added), folder / f"{name}_{case}.ipynb")
    out = folder.parent / "bypass-grades.csv"
    assert main(["grade", str(folder), "--csv", str(out), "--timeout", "120",
                 "--memory", "4"]) == 0
    with open(out, newline="", encoding="utf-8") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_graded_bypass_loses_the_question_and_only_that(graded, case):
    name, _, _, expected = CASES[case]
    row = graded[f"{name}_{case}.ipynb"]
    points = grader.question_points(ROOT / "grading" / "autograders" / f"{name}.zip")
    zero = set(points) if isinstance(expected, str) else set(expected)
    for question, possible in points.items():
        score = float(row[f"{name}:{question}"])
        assert score == (0 if question in zero else possible), (question, row["reasons"])
    for question in zero:
        assert f"{question}: cell" in row["reasons"], row["reasons"]
