"""Exercises from one source (:mod:`.exercises`), and grading that never hangs
(:mod:`.grader`).

The solved masters in ``solutions/`` generate the student notebooks, the autograders and
the solved references; the grader runs a submission in a sandboxed child
(:mod:`.sandbox`, :mod:`.child`) and its hidden tests here, reaching the submission over
a data-only channel (:mod:`.remote`, :mod:`.channel`); :mod:`.hidden` holds the helpers
the hidden tests call, :mod:`.forbid` the forbidding of library functions they use, and
:mod:`.feedback` the learner's ``grader.check`` in the notebook.
"""
from .exercises import assign, generate, masters, repository_root, stale
from .grader import (DEFAULT_TIMEOUT, OUTPUT_LIMIT, Grade, grade_folder, grade_submission,
                     is_answer_cell, question_points, summary_table, write_csv)

__all__ = ["assign", "generate", "masters", "repository_root", "stale", "DEFAULT_TIMEOUT",
           "OUTPUT_LIMIT", "Grade", "grade_folder", "grade_submission", "is_answer_cell",
           "question_points", "summary_table", "write_csv"]
