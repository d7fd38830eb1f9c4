"""What ``grader.check`` tells a learner, for every question of every exercise: left
unanswered, answered wrongly, and solved.

Each exercise's set-up runs once (as the grader runs it); then its answer cells run as
the exercise hands them out (``...``), as the solved reference has them, and with every
answer of one question made wrong (a function's result, or a value, shifted: numbers
and tensors by one, strings and lists changed). Each line must say it in the learner's
terms: at most 160 characters, no variable of the test's own (``_x``), no Python error
text about ``None`` or ``...``.
"""
from __future__ import annotations

import contextlib
import io
import re

import nbformat
import numpy as np
import pytest
import torch

from mmcourse.grading import grader, repository_root
from mmcourse.grading.feedback import LINE, Notebook, answer_names
from mmcourse.grading.static import python_source

ROOT = repository_root()
NAMES = sorted(p.stem for p in (ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
TEST_CODE = re.compile(r"(?<![\w.'\"])_[A-Za-z]\w*|NoneType|ellipsis|Traceback|File \"")


def _namespace(name: str, answers: str) -> dict:
    """The exercise's set-up, then its answer cells from ``answers`` ("exercises" as
    handed out, "solved" as in the reference submission)."""
    env = dict(grader.context(ROOT / "exercises" / f"{name}.ipynb"))
    folder = ROOT / ("exercises" if answers == "exercises" else "grading/solved")
    nb = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in nb.cells:
            if grader.is_answer_cell(cell) or "otter_assign_solution_cell" in cell.metadata.get("tags", []):
                exec(compile(python_source(cell.source), f"<{name} answer>", "exec"), env)
    return env


def _shifted(value):
    """A wrong version of an answer's value."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, torch.Tensor):
        return value.float() + 1 if value.numel() else torch.ones(1)
    if isinstance(value, np.ndarray):
        return value.astype(float) + 1
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, (list, tuple)):
        return type(value)(_shifted(v) for v in value) if value else [0]
    if isinstance(value, dict):
        return {k: _shifted(v) for k, v in value.items()}
    return None


def _wrong(value):
    """A wrong answer: a function whose results are shifted, or a shifted value."""
    if callable(value) and not isinstance(value, type):
        def wrong(*args, **kwargs):
            return _shifted(value(*args, **kwargs))
        return wrong
    return value if isinstance(value, type) else _shifted(value)


def _assert_one_clear_line(line: str, where: str) -> None:
    assert len(line) <= LINE, (where, line)
    assert "\n" not in line, (where, line)
    found = TEST_CODE.search(line)
    assert found is None, (where, found.group(0), line)


@pytest.mark.parametrize("name", NAMES)
def test_every_question_unanswered_wrong_and_solved_gets_one_clear_line(name):
    checker = Notebook(str(ROOT / "exercises" / f"{name}.ipynb"))
    questions = answer_names(checker._notebook())
    assert set(questions) == set(checker.tests()), "every question has its answer cells"

    blank = checker.check_all(_namespace(name, "exercises"))
    for question, why in blank.lines:
        assert why is not None and why.startswith("not answered yet: "), (question, why)
        assert any(n in why for n in questions[question]), (question, why)
        _assert_one_clear_line(why, f"{question} unanswered")

    solved = _namespace(name, "solved")
    assert checker.check_all(solved).passed, str(checker.check_all(solved))

    failed = 0
    for question, names in questions.items():
        env = dict(solved)
        env.update({n: _wrong(env[n]) for n in names})
        why = checker.check(question, env).lines[0][1]
        if why is not None:
            failed += 1
            _assert_one_clear_line(why, f"{question} wrong")
    assert failed >= len(questions) // 2, f"only {failed} of {len(questions)} wrong answers failed"
