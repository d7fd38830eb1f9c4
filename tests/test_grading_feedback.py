"""The learner's grader.check: one readable line per failing public test, the Colab
install cell first, and cells the grader recognises as its own."""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import torch

from mmcourse.grading import masters
from mmcourse.grading.grader import _grader_cell
from mmcourse.grading.feedback import Notebook, explain_case

ROOT = Path(__file__).resolve().parent.parent
NAMES = [m.stem for m in masters()]


def test_a_failing_public_test_prints_one_short_line_with_the_returned_value():
    grader = Notebook(str(ROOT / "exercises" / "01_cnn.ipynb"))
    env = {"conv_output_size": lambda h, k, s=1, p=0: None}
    result = grader.check("q1_output_size", env)
    text = str(result)
    assert not result.passed
    assert text == "q1_output_size: ❌ conv_output_size(28, 3) returned None; expected 26"
    assert "Traceback" not in text and 'File "' not in text and "doctest" not in text
    assert "conv_output_size(28, 3)" in result._repr_html_()


def test_a_passing_question_says_so_and_check_all_gives_a_line_per_question():
    grader = Notebook(str(ROOT / "exercises" / "01_cnn.ipynb"))
    env = {"conv_output_size": lambda h, k, s=1, p=0: (h + 2 * p - k) // s + 1}
    assert grader.check("q1_output_size", env).passed
    lines = str(grader.check_all(env)).splitlines()
    assert len(lines) == len(grader.tests()) and lines[0].startswith("q1_output_size: ✅")
    assert all(len(line) < 400 for line in lines)


@pytest.mark.parametrize("source, env, expected", [
    ("assert f(2) == 5", {"f": lambda x: x + 1}, "f(2) returned 3; expected 5"),
    ("_y = f(2)\nassert _y.shape == (3,)", {"f": lambda x: torch.zeros(2), "torch": torch},
     "f(2) gave result.shape = torch.Size([2]); expected (3,)"),
    ("assert isinstance(v, set)", {"v": None}, "v is None; expected a set"),
    ("_r = f(1)\nassert isinstance(_r, tuple)", {"f": lambda x: None},
     "f(1) returned None; expected a tuple"),
    ("assert f(1) > 0, 'f must be positive'", {"f": lambda x: -x}, "f must be positive"),
    ("assert f(1).sum() == 1", {"f": lambda x: None}, "f(1) returned None: is a `return` missing?"),
    ("assert torch.allclose(f(), torch.ones(2))", {"f": lambda: torch.zeros(2), "torch": torch},
     "f() returned tensor([0, 0], float32); expected tensor([1, 1], float32) "
     "(largest difference 1)"),
    ("_y = f(2)\nassert _y.shape == (3,)", {"f": lambda x: None},
     "f(2) returned None: is a `return` missing?"),
    ("_p, _q = f(2)\nassert _q == 3", {"f": lambda x: (x, x)}, "f(2) gave result[1] = 2; expected 3"),
    ("for _x in (1, 2):\n    assert f(_x) == _x", {"f": lambda x: 1},
     "f(x) returned 1; expected 2"),
    ("assert f(1) == 2", {"f": lambda x: ...}, "f(1) returned ... (not written yet); expected 2"),
    ("assert f(0) == 1", {"f": lambda x: 1 / x},
     "f(0) raised ZeroDivisionError: division by zero"),
    ("assert f(1) == 1", {"f": lambda x: 1}, None),
])
def test_an_assert_is_explained_in_one_line(source, env, expected):
    assert explain_case(source, env) == expected


def test_a_renamed_copy_is_found_by_its_exercise_name(monkeypatch, tmp_path):
    for name in ("00_setup_and_data", "01_cnn"):
        (tmp_path / f"{name} (copy).ipynb").write_bytes(
            (ROOT / "exercises" / f"{name}.ipynb").read_bytes())
    monkeypatch.chdir(tmp_path)
    assert "q1_output_size" in Notebook("01_cnn.ipynb").tests()
    assert "q1_normalize" in Notebook("00_setup_and_data.ipynb").tests()


def test_on_colab_the_tests_come_from_the_open_notebook(monkeypatch, tmp_path):
    nb = json.loads((ROOT / "exercises" / "01_cnn.ipynb").read_text())
    message = types.ModuleType("google.colab._message")
    message.blocking_request = lambda kind, timeout_sec=0: {"ipynb": nb} if kind == "get_ipynb" else None
    colab = types.ModuleType("google.colab")
    colab._message = message
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab._message", message)
    monkeypatch.chdir(tmp_path)  # no notebook file here, as on Colab
    result = Notebook("01_cnn.ipynb").check("q1_output_size", {"conv_output_size": lambda *a: 0})
    assert str(result) == "q1_output_size: ❌ conv_output_size(28, 3) returned 0; expected 26"


@pytest.mark.parametrize("name", NAMES)
def test_an_exercise_opens_with_badges_then_the_colab_install_then_the_grader(name, monkeypatch):
    nb = nbformat.read(ROOT / "exercises" / f"{name}.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "markdown"
    assert nb.cells[0].source.startswith("[![Open In Colab]")
    code = [c for c in nb.cells if c.cell_type == "code"]
    install, grader = code[0].source, code[1].source
    assert "pip" in install and "install-data" in install
    assert not any("otter" in c.source for c in code), "otter is not installed on Colab yet"
    assert _grader_cell(grader) and f'Notebook("{name}.ipynb")' in grader
    assert not _grader_cell(install)
    # outside Colab the install cell runs nothing
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    exec(compile(install, "<install>", "exec"), {})
    assert calls == []
    # on Colab it installs the course, then its data, before anything else runs
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(compile(install, "<install>", "exec"), {})
    assert len(calls) == 2 and "pip" in calls[0][0] and "install-data" in calls[1][0]
    assert nb.metadata["otter"]["tests"], "the public tests travel in the notebook"


def test_in_a_kernel_the_check_cell_shows_the_one_line(tmp_path):
    """What a learner sees: the exercise's grader cell and check cell run in a Jupyter
    kernel, with a wrong answer."""
    from nbclient import NotebookClient

    exercise = nbformat.read(ROOT / "exercises" / "01_cnn.ipynb", as_version=4)
    grader_cell = next(c for c in exercise.cells if c.cell_type == "code" and _grader_cell(c.source)
                       and "Notebook(" in c.source)
    nb = nbformat.v4.new_notebook(metadata=exercise.metadata)
    nb.cells = [nbformat.v4.new_code_cell(grader_cell.source),
                nbformat.v4.new_code_cell("def conv_output_size(h, k, s=1, p=0):\n    return h - k"),
                nbformat.v4.new_code_cell('grader.check("q1_output_size")')]
    nbformat.write(nb, tmp_path / "01_cnn.ipynb")
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[2].outputs
    shown = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in outputs)
    assert shown.strip() == "q1_output_size: ❌ conv_output_size(28, 3) returned 25; expected 26"
    assert not any(o.output_type == "error" for o in outputs)
