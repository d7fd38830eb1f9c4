"""Time the grader on ten submissions: the solved and the untouched copies of exercises
00-04, graded in one run as an instructor would (``python -m mmcourse grade``).

    python benchmarks/grading.py            # prints one line per row, then the seconds

Compare two versions of the grader by timing this script under each with
``farm-bench --vs`` on the same machine (grading runs one submission at a time, so the
ratio, not the absolute time, carries over between machines).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from mmcourse.__main__ import main
from mmcourse.grading import repository_root

EXERCISES = ("00_setup_and_data", "01_cnn", "02_rnn", "03_crnn", "04_fusion")


def submissions(folder: Path, root: Path) -> Path:
    """``folder`` filled with ``solved/NN.ipynb`` and ``untouched/NN.ipynb`` for each of
    :data:`EXERCISES`."""
    for kind, source in (("solved", root / "grading" / "solved"), ("untouched", root / "exercises")):
        (folder / kind).mkdir(parents=True)
        for name in EXERCISES:
            shutil.copy(source / f"{name}.ipynb", folder / kind / f"{name}.ipynb")
    return folder


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        folder = submissions(Path(tmp) / "ten", repository_root())
        tic = time.perf_counter()
        code = main(["grade", str(folder), "--csv", str(Path(tmp) / "grades.csv")])
        print(f"graded 10 submissions in {time.perf_counter() - tic:.1f} s (exit {code})")
        sys.exit(code)
