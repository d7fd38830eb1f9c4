"""Spelling: codespell over the course's prose and code, with the repository's .codespellrc."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".codespellrc"
# The chapters' and masters' jupytext sources (their .ipynb hold the same text, plus
# base64 figures), the docs, the package, the tests and the Markdown files.
SPELLING_PATHS = [*sorted(ROOT.glob("notebooks/[0-9]*.py")),
                  *sorted(ROOT.glob("solutions/[0-9]*.py")),
                  ROOT / "docs", ROOT / "mmcourse", ROOT / "tests",
                  ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "benchmarks" / "README.md"]


def _codespell(*paths):
    return subprocess.run([sys.executable, "-m", "codespell_lib", "--config", str(CONFIG),
                           *map(str, paths)], cwd=ROOT, capture_output=True, text=True)


def test_the_course_is_spelled_right():
    assert all(path.exists() for path in SPELLING_PATHS)
    assert len(SPELLING_PATHS) > 20, "the chapters' and masters' sources are checked"
    result = _codespell(*SPELLING_PATHS)
    assert result.returncode == 0, (
        "codespell found misspellings (fix them, or add a deliberate word to "
        f".codespellrc's ignore-words-list):\n{result.stdout}{result.stderr}")


def test_the_configuration_still_finds_misspellings(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("The model " + "recie" + "ves " + "seper" + "ate batches.\n")
    result = _codespell(page)
    assert result.returncode != 0
    assert "receives" in result.stdout and "separate" in result.stdout
