"""Answers that do no work and return something empty score nothing.

An empty tensor whose shape ends in the right sizes passes ``torch.allclose`` against
any reference (it broadcasts, and nothing is compared), and an empty tuple passes a test
that loops over ``zip(answer, reference)``. Each submission here is a solved reference
notebook (``grading/solved/``) in which one answer function is replaced by one that
returns such an empty value; all are graded in one run. The replaced question must score
0 with a reason, and every other question of the notebook full marks.
"""
from __future__ import annotations

import csv

import nbformat
import pytest

from mmcourse.__main__ import main
from mmcourse.grading import repository_root
from mmcourse.grading.grader import question_points

ROOT = repository_root()

EMPTY_ANSWERS = {
    ("00_setup_and_data", "q2_pad"): ("pad_batch", """
def pad_batch(seqs, padding_value=0):
    return ()
"""),
    ("00_setup_and_data", "q3_standardize"): ("standardize_rows", """
def standardize_rows(features, eps=1e-5):
    return features.new_empty((0, *features.shape))
"""),
    ("04_fusion", "q1_weighted_sum"): ("weighted_sum", """
def weighted_sum(z, weights, present=None):
    first = next(iter(z.values()))
    return first.new_empty((0, *first.shape))
"""),
    ("04_fusion", "q4_late_fusion"): ("late_fusion", """
def late_fusion(logits, present):
    return logits.new_empty((0, logits.shape[0], logits.shape[2]))
"""),
    ("07_captioning", "q1_attention"): ("additive_attention", """
def additive_attention(query, keys, mask, W_q, W_k, b_k, v):
    return keys.new_empty((0, keys.shape[0], keys.shape[2])), keys.new_empty((0, *mask.shape))
"""),
    ("08_speech_recognition", "q2_alpha_step"): ("alpha_step", """
def alpha_step(alpha_prev, probs_t, extended, blank=0):
    return alpha_prev.new_empty((0, *alpha_prev.shape))
"""),
    ("09_translation", "q1_copy_mixture"): ("copy_mixture", """
def copy_mixture(logits, gate_score, beta, sources, pad=0):
    return logits.new_empty((0, logits.shape[0], logits.shape[1] + sources.shape[1]))
"""),
}


def _file_name(exercise: str, question: str) -> str:
    """The submission's file name: its exercise's prefix tells the grader which it is."""
    return f"{exercise}-empty-{question}.ipynb"


def _with_empty_answer(exercise: str, function: str, source: str) -> nbformat.NotebookNode:
    """The solved reference notebook of ``exercise`` with ``function`` redefined at the
    end of the answer cell that defines it."""
    nb = nbformat.read(ROOT / "grading" / "solved" / f"{exercise}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code"
                and any(line.startswith(f"def {function}(") for line in c.source.splitlines()))
    cell.source = cell.source.rstrip() + "\n\n" + source.strip() + "\n"
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """{file name: CSV row} for every submission of EMPTY_ANSWERS, graded in one run."""
    folder = tmp_path_factory.mktemp("empty-answers")
    for (exercise, question), (function, source) in EMPTY_ANSWERS.items():
        nbformat.write(_with_empty_answer(exercise, function, source),
                       folder / _file_name(exercise, question))
    out = folder.parent / "empty-answers.csv"
    assert main(["grade", str(folder), "--csv", str(out), "--timeout", "240"]) == 0
    with open(out, newline="", encoding="utf-8") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


@pytest.mark.parametrize("exercise, question", list(EMPTY_ANSWERS),
                         ids=[f"{e[:2]}-{q}" for e, q in EMPTY_ANSWERS])
def test_an_empty_answer_scores_zero_and_the_rest_full_marks(graded, exercise, question):
    row = graded[_file_name(exercise, question)]
    points = question_points(ROOT / "grading" / "autograders" / f"{exercise}.zip")
    assert float(row[f"{exercise}:{question}"]) == 0, row["reasons"]
    assert f"{question}:" in row["reasons"], row["reasons"]
    for other, possible in points.items():
        if other != question:
            assert float(row[f"{exercise}:{other}"]) == possible, (other, row["reasons"])
    assert float(row["total"]) == float(row["possible"]) - points[question]
