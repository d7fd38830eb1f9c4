"""Colab and Binder badges, install cells and the one repository address."""
import shutil
from pathlib import Path

import pytest

from mmcourse.__main__ import main
from mmcourse.runtime import launch

ROOT = Path(__file__).resolve().parent.parent


def test_every_notebook_has_both_badges_and_the_install_cell_from_the_one_address():
    assert launch.problems(ROOT) == []


def test_every_folder_holds_notebooks_the_check_looks_at():
    files = {p.relative_to(ROOT).parts[0] for p in launch.notebook_files(ROOT)}
    assert files == {"notebooks", "solutions", "exercises"}
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    exercises = sorted(p.stem for p in (ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
    assert chapters == exercises


def test_a_master_carries_the_badges_of_the_exercise_it_generates():
    line = launch.badges("solutions/03_crnn.py", "https://github.com/someone/course")
    assert "colab.research.google.com/github/someone/course/blob/main/exercises/03_crnn.ipynb" in line
    assert "mybinder.org/v2/gh/someone/course/main?labpath=exercises/03_crnn.ipynb" in line


def test_a_new_address_in_pyproject_reaches_every_badge_and_install_cell(tmp_path):
    for name in ("pyproject.toml",):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in launch.FOLDERS:
        (tmp_path / folder).mkdir()
        for path in sorted((ROOT / folder).glob("0[01]_*.*")):
            shutil.copy(path, tmp_path / folder / path.name)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        "https://github.com/mmcourse/mmcourse", "https://github.com/fork/course"))
    assert launch.problems(tmp_path), "a changed address must make the notebooks stale"
    changed = launch.sync(tmp_path)
    assert len(changed) == len(launch.notebook_files(tmp_path))
    assert launch.problems(tmp_path) == []
    assert launch.sync(tmp_path) == [], "a second sync changes nothing"
    text = (tmp_path / "notebooks" / "01_cnn.py").read_text()
    assert "github.com/mmcourse/mmcourse" not in text
    assert "mybinder.org/v2/gh/fork/course/main?labpath=notebooks/01_cnn.ipynb" in text
    assert "git+https://github.com/fork/course" in text


def test_an_address_that_is_not_github_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="GitHub"):
        launch.badges("notebooks/01_cnn.ipynb", "https://gitlab.com/a/b")


def test_the_command_line_reports_missing_data_without_a_traceback(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MMCOURSE_DATA_ROOT", str(tmp_path))
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: ") and "apt-get install" in err


@pytest.mark.parametrize("ci, tty, expected", [("", True, True), ("true", True, False),
                                               ("", False, False)])
def test_progress_is_on_by_default_only_on_a_terminal_outside_ci(monkeypatch, ci, tty, expected):
    import argparse
    import sys

    from mmcourse.__main__ import _default_progress

    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    args = argparse.Namespace(progress=None)
    _default_progress(args)
    assert args.progress is expected
    args = argparse.Namespace(progress=False)
    _default_progress(args)
    assert args.progress is False


def test_binder_installs_the_same_apt_packages_as_install_data():
    from mmcourse.runtime.install import SOURCES

    listed = (ROOT / "binder" / "apt.txt").read_text().split()
    assert sorted(listed) == sorted(s.package for s in SOURCES if s.kind == "apt")


def test_binder_post_build_installs_the_course_its_data_and_trusts_the_notebooks():
    script = ROOT / "binder" / "postBuild"
    assert script.stat().st_mode & 0o111, "postBuild must be executable"
    lines = [line.strip() for line in script.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "set -euo pipefail"
    assert any("pip install" in line and '-e ".[dev]"' in line for line in lines)
    assert "python -m mmcourse install-data" in lines
    assert any(line.startswith("jupyter trust") and "exercises/" in line for line in lines)


def test_the_workflow_for_forks_runs_the_readme_test_command():
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    assert "ubuntu" in workflow["jobs"]["test"]["runs-on"]
    assert [s["run"] for s in steps if "run" in s][-1] == "make test"
    assert "make test" in (ROOT / "README.md").read_text()


def test_make_lab_opens_the_repository_root_with_trusted_notebooks():
    import subprocess

    out = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert "--notebook-dir=." in out
    assert "jupyter trust notebooks/[0-9]*.ipynb exercises/[0-9]*.ipynb" in out
    assert "http://localhost:" in out
