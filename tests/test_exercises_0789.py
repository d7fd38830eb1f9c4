"""Exercises 07–09: common wrong answers to their computed questions score 0.

Each wrong submission is the solved reference with one answer of a question changed
into a mistake a learner makes (the padded positions counted in the loss, no blank
rule for repeated letters, probabilities instead of logs, no merging of prefixes, the
gate's two sides swapped, …). A submission carries at most one mistake per question, so
several questions are checked by one notebook; every other question of it keeps its
points. All of them, and the solved references, are graded in one run.
"""
from __future__ import annotations

import copy
import csv

import nbformat
import pytest

from mmcourse.__main__ import main
from mmcourse.grading import grader, repository_root

ROOT = repository_root()

# submission name -> (exercise, {question: (text of the solved answer, the wrong text)})
WRONG = {
    "07_captioning_wrong_a": ("07_captioning", {
        "q4_part_scores": (  # a word needed twice counts twice even if found once
            "found[key][0] += sum(min(n, have[w]) for w, n in need.items())",
            "found[key][0] += sum(n for w, n in need.items() if w in have)"),
        "q5_masked_loss": (  # the padded positions count in the mean
            "return loss[real].sum() / real.sum()", "return loss.mean()"),
    }),
    "07_captioning_wrong_b": ("07_captioning", {
        "q4_part_scores": (  # the first content word taken as the object
            '"object word": content[-1:], "attributes": content[:-1]}',
            '"object word": content[:1], "attributes": content[1:]}'),
        "q5_masked_loss": (  # no label smoothing
            "loss = (1 - smoothing) * nll + smoothing * -log_p.mean(-1)", "loss = nll"),
    }),
    "08_speech_recognition_wrong_a": ("08_speech_recognition", {
        "q5_ctc_loss": (  # the skip allowed between two equal letters
            "symbol != extended[s - 2]:\n                terms.append",
            "True:\n                terms.append"),
        "q6_prefix_beam": (  # no p_b / p_nb split: a repeat always merges
            "give(prefix, pnb=pnb + y)\n                    give(prefix + (c,), pnb=pb + y)",
            "give(prefix, pnb=total + y)"),
    }),
    "08_speech_recognition_wrong_b": ("08_speech_recognition", {
        "q5_ctc_loss": (  # sums in probability space: long utterances underflow
            "torch.logsumexp(torch.stack(terms), 0)", "torch.log(torch.stack(terms).exp().sum())"),
        "q6_prefix_beam": (  # the best path of each prefix instead of the sum of its paths
            "nxt[prefix] = (add(old_b, pb), add(old_nb, pnb))",
            "nxt[prefix] = (max(old_b, pb), max(old_nb, pnb))"),
    }),
    "08_speech_recognition_wrong_c": ("08_speech_recognition", {
        "q5_ctc_loss": (  # paths must end on the final blank
            "return -float(torch.logaddexp(alpha[-1], alpha[-2]))", "return -float(alpha[-1])"),
    }),
    "09_translation_wrong_a": ("09_translation", {
        "q1_copy_mixture": (  # the gate kept where there is nothing to copy
            "gate = torch.where(words.any(-1), gate, torch.ones_like(gate))[:, None]",
            "gate = gate[:, None]"),
        "q3_exposure": (  # teacher-forced predictions counted as free running
            "out = free_running(table, bos, eos, len(y))",
            "out = [int(torch.argmax(table[p])) for p in [bos] + list(y[:-1])]"),
    }),
    "09_translation_wrong_b": ("09_translation", {
        "q1_copy_mixture": (  # a word held by two rows gets the weight of one of them
            ".scatter_add(1, sources, beta * words)", ".scatter(1, sources, beta * words)"),
    }),
    "09_translation_wrong_c": ("09_translation", {
        "q1_copy_mixture": (  # g on the copy side
            "return gate * generated + (1 - gate) * copied",
            "return (1 - gate) * generated + gate * copied"),
    }),
}
EXERCISES = ("07_captioning", "08_speech_recognition", "09_translation")


def _wrong(solved, changes: dict[str, tuple[str, str]]):
    """A copy of ``solved`` with each answer text replaced by its wrong version."""
    nb = copy.deepcopy(solved)
    for question, (right, wrong) in changes.items():
        cells = [c for c in nb.cells if c.cell_type == "code" and right in c.source]
        assert len(cells) == 1 and cells[0].source.count(right) == 1, (question, right)
        cells[0].source = cells[0].source.replace(right, wrong)
    return nb


def _points(name: str) -> dict:
    return grader.question_points(ROOT / "grading" / "autograders" / f"{name}.zip")


@pytest.fixture(scope="module")
def grades(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wrong0789")
    solved = {n: nbformat.read(ROOT / "grading" / "solved" / f"{n}.ipynb", as_version=4)
              for n in EXERCISES}
    for name in EXERCISES:
        nbformat.write(solved[name], folder / f"{name}.ipynb")
    for file, (name, changes) in WRONG.items():
        nbformat.write(_wrong(solved[name], changes), folder / f"{file}.ipynb")
    out = folder.parent / "wrong0789-grades.csv"
    assert main(["grade", str(folder), "--csv", str(out), "--timeout", "300",
                 "--memory", "4"]) == 0
    with open(out, newline="", encoding="utf-8") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


@pytest.mark.parametrize("name", EXERCISES)
def test_the_solved_copy_scores_full_marks(grades, name):
    row = grades[f"{name}.ipynb"]
    for question, possible in _points(name).items():
        assert float(row[f"{name}:{question}"]) == possible, (question, row["reasons"])


@pytest.mark.parametrize("file", sorted(WRONG))
def test_a_wrong_answer_scores_zero_on_its_question_only(grades, file):
    name, changes = WRONG[file]
    row = grades[f"{file}.ipynb"]
    for question, possible in _points(name).items():
        score = float(row[f"{name}:{question}"])
        assert score == (0 if question in changes else possible), (question, row["reasons"])
