"""Grade one notebook with otter and write a JSON summary (run in a child process).

``python -m mmcourse.grading.worker AUTOGRADER.zip SUBMISSION.ipynb SUMMARY.json``

The summary holds each question's score, possible points and first failure message, the
errors raised by the submission's cells, and the total size of its printed output.
"""
from __future__ import annotations

import json
import sys


def _failure(test_file) -> str:
    """What went wrong in the first failed test case: the failing statement and the
    exception it raised (or the output it printed)."""
    for result in test_file.test_case_results:
        if result.passed:
            continue
        lines = [line.strip() for line in str(result.message).splitlines() if line.strip()]
        if "Failed example:" not in lines:
            return (lines or ["a test failed"])[-1][:200]
        start = lines.index("Failed example:")
        statement = lines[start + 1] if start + 1 < len(lines) else ""
        rest = lines[start + 2:]
        if "Exception raised:" in rest:
            trace = rest[rest.index("Exception raised:") + 1:]
            outcome = next((line for line in trace if not line.startswith(("Traceback", "File", "^", "~"))
                            and ("Error" in line or "Exception" in line)), trace[-1] if trace else "")
        elif "Got:" in rest:
            outcome = "printed " + " ".join(rest[rest.index("Got:") + 1:])[:80]
        else:
            outcome = "failed"
        return f"`{statement[:100]}` → {outcome[:120]}"
    return ""


def summarise(results) -> dict:
    """The JSON-ready summary of an otter ``GradingResults``."""
    questions = {name: {"score": float(tf.score), "possible": float(tf.possible),
                        "failure": _failure(tf)} for name, tf in results.results.items()}
    errors, chars = [], 0
    for cell in results.notebook.cells if results.notebook is not None else []:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append({"source": cell.get("source", ""), "ename": out.get("ename", ""),
                               "evalue": str(out.get("evalue", ""))})
            chars += len(out.get("text", "")) + sum(len(str(v)) for v in out.get("data", {}).values())
    return {"questions": questions, "errors": errors, "output_chars": chars}


def main(argv: list[str]) -> int:
    autograder, submission, out = argv
    import otter.api

    results = otter.api.grade_submission(submission, autograder, quiet=True)
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(summarise(results), fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
