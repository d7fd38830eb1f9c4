"""Submissions that try to cheat the grader, or to harm the machine it runs on.

Each is built here from the untouched exercise 01 (which scores 0) with one hostile cell
after its first answer cell, graded in one run, and must score what the untouched
exercise scores, with a reason. The run must survive all of them and write its CSV;
afterwards no process of theirs is left and no file they wrote remains.
"""
from __future__ import annotations

import copy
import csv
import json
import os
import time
from pathlib import Path

import nbformat
import pytest

from mmcourse.__main__ import main
from mmcourse.grading import is_answer_cell, masters, repository_root
from mmcourse.grading.sandbox import protection

ROOT = repository_root()
NAME = "01_cnn"
TOKEN = f"mmcourse-attack-{os.getpid()}-{int(time.time())}"
MEMORY_GIB = 4
TIMEOUT = 60
SANDBOXED = protection().startswith("bubblewrap")


def _frame(message: dict) -> str:
    return f"(lambda b: len(b).to_bytes(8, 'big') + b)(json.dumps({message!r}).encode())"


ATTACKS = {
    # replace the test machinery of the old design: doctest's runner, otter's test
    # functions, and the grader's own modules inside the child
    "patched_machinery": """
import doctest, sys
doctest.DocTestRunner.run = lambda self, *a, **k: doctest.TestResults(0, 0)
doctest.OutputChecker.check_output = lambda *a, **k: True
import mmcourse.grading.channel as _ch, mmcourse.grading.hidden as _hid
_ch.Encoder.__call__ = lambda self, value, depth=0: {"passed": True, "score": 1.0}
_hid.hidden_seed = lambda seed: 0
for _m in list(sys.modules):
    if _m.startswith("otter"):
        sys.modules[_m].__dict__.update(passed=True)
""",
    # forge the replies the grader waits for, on every open descriptor
    "forged_results": f"""
import json, os
_forged = {_frame({"event": "ran", "output_chars": 0})} + {_frame({"ok": True, "names": {}})}
for _fd in range(3, 64):
    try:
        os.write(_fd, _forged)
    except OSError:
        pass
open("summary.json", "w").write(json.dumps({{"questions": {{"q1_output_size": {{"score": 1, "possible": 1}}}}}}))
""",
    # a results file that runs code when loaded, and a frame that claims 1 TB
    "poisoned_results": f"""
import os, pickle
class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/{TOKEN}-pickle",))
for _name in ("results.pkl", ".otter_results", "summary.json"):
    with open(_name, "wb") as _fh:
        pickle.dump(_Evil(), _fh)
for _fd in range(3, 64):
    try:
        os.write(_fd, (2**40).to_bytes(8, "big") + b"x" * 64)
    except OSError:
        pass
""",
    # find the hidden tests and the solutions on disk, and use them
    "reads_tests": f"""
import glob, zipfile
_found = glob.glob({str(ROOT.parent)!r} + "/**/autograders/*.zip", recursive=True)
print(_found)
_source = open({str(ROOT / "solutions" / f"{NAME}.py")!r}).read()
exec(_source.split("# BEGIN SOLUTION")[0])
_tests = zipfile.ZipFile({str(ROOT / "grading" / "autograders" / f"{NAME}.zip")!r}).read("tests/q1_output_size.py")
""",
    # write into the grader's home, /tmp, the course and the submissions
    "writes_outside": f"""
import os, pathlib
for _path in ("/tmp/{TOKEN}-tmp", os.path.expanduser("~/{TOKEN}-home"), "/root/{TOKEN}-root"):
    try:
        pathlib.Path(_path).write_text("written")
    except OSError:
        pass
try:
    pathlib.Path({str(ROOT / "exercises")!r}, "{TOKEN}-course").write_text("written")
except OSError:
    pass
pathlib.Path({str(ROOT / "mmcourse")!r}, "{TOKEN}-package").write_text("written")
""",
    # processes that outlive the notebook: in the background, in a new session, detached
    "leaves_processes": f"""
import os, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)  # {TOKEN}"])
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)  # {TOKEN}"],
                 start_new_session=True)
subprocess.Popen(["setsid", "-f", sys.executable, "-c", "import time; time.sleep(600)  # {TOKEN}"],
                 env={{}})
""",
    # allocate memory in small pieces until something gives
    "memory_hog": """
_hog = []
while True:
    _hog.append(bytearray(1 << 20))
""",
}
EXPECTED = {
    "patched_machinery": "q1_output_size:",
    "forged_results": "q1_output_size:",
    "poisoned_results": "stopped answering",
    "reads_tests": "FileNotFoundError",
    "writes_outside": "raised OSError",
    "leaves_processes": "q1_output_size:",
    "memory_hog": "memory limit",
    "claims_other": "metadata names exercise '00_setup_and_data'",
}
NEEDS_SANDBOX = {"reads_tests", "writes_outside"}


def _processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _children_running(module: str) -> list[int]:
    """Descendants of this process whose command line names ``module``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            pid = int(entry.name)
            while pid > 1:
                stat = (Path("/proc") / str(pid) / "stat").read_text()
                pid = int(stat.rsplit(")", 1)[1].split()[1])
                if pid == os.getpid():
                    if module.encode() in cmd:
                        found.append(int(entry.name))
                    break
        except (OSError, ValueError, IndexError):
            continue
    return found


def _snapshot(places=None) -> set[str]:
    places = places or (Path.home(), ROOT, ROOT / "exercises", ROOT / "grading",
                        ROOT / "mmcourse", ROOT / "mmcourse" / "grading")
    return {str(p) for place in places if place.is_dir() for p in place.iterdir()}


def _hidden_tests_in(paths) -> list[str]:
    """Files under ``paths`` that hold a hidden test of exercise 01."""
    found = []
    for top in paths:
        top = Path(top)
        for path in [top, *top.rglob("*")] if top.is_dir() else [top]:
            try:
                if path.is_file() and path.stat().st_size < 50_000_000 \
                        and b"conv_output_size(224, 7, 2, 3)" in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    exercise = nbformat.read(ROOT / "exercises" / f"{NAME}.ipynb", as_version=4)
    first_answer = next(i for i, c in enumerate(exercise.cells)
                        if is_answer_cell(c))
    folder = tmp_path_factory.mktemp("attacks")
    for case, code in ATTACKS.items():
        nb = copy.deepcopy(exercise)
        nb.cells.insert(first_answer + 1, nbformat.v4.new_code_cell(code.strip()))
        nbformat.write(nb, folder / f"{NAME[:3]}{case}.ipynb")
    claims = copy.deepcopy(exercise)
    claims.metadata["otter"]["assignment_name"] = "00_setup_and_data"
    nbformat.write(claims, folder / f"{NAME[:3]}claims_other.ipynb")
    out = folder.parent / "attack-grades.csv"
    before, tmp_before = _snapshot(), _snapshot([Path("/tmp")])
    tic = time.monotonic()
    assert main(["grade", str(folder), "--csv", str(out), "--timeout", str(TIMEOUT),
                 "--memory", str(MEMORY_GIB)]) == 0
    seconds = time.monotonic() - tic
    after = _snapshot()
    new_in_tmp = sorted(_snapshot([Path("/tmp")]) - tmp_before)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = {row["file"]: row for row in csv.DictReader(fh)}
    return {"rows": rows, "new_files": sorted(after - before - {str(out)}), "seconds": seconds,
            "folder": folder, "hidden_in_tmp": _hidden_tests_in(new_in_tmp)}


def test_grading_ran_in_bubblewrap():
    if os.environ.get("CI"):
        assert SANDBOXED, protection()
    elif not SANDBOXED:
        pytest.skip(f"bubblewrap is not available here: {protection()}")


@pytest.mark.parametrize("case", list(EXPECTED))
def test_attack_scores_what_the_untouched_exercise_scores(attacked, case):
    if case in NEEDS_SANDBOX and not SANDBOXED:
        pytest.skip("needs bubblewrap")
    row = next(r for f, r in attacked["rows"].items() if f.endswith(f"{case}.ipynb"))
    assert float(row["possible"]) == 11  # from the instructor's archive
    assert float(row["total"]) == 0, row["reasons"]
    assert EXPECTED[case] in row["reasons"], row["reasons"]
    assert float(row["seconds"]) < TIMEOUT + 60


def test_the_run_graded_every_attack(attacked):
    assert len(attacked["rows"]) == len(EXPECTED)


def test_no_process_is_left(attacked):
    deadline = time.monotonic() + 10
    while (_processes_with(TOKEN) or _children_running("mmcourse.grading.child")) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(TOKEN) == []
    assert _children_running("mmcourse.grading.child") == []
    assert _children_running("bwrap") == []


def test_no_file_is_left_outside_the_csv(attacked):
    if not SANDBOXED:
        pytest.skip("needs bubblewrap")
    assert attacked["new_files"] == []
    assert attacked["hidden_in_tmp"] == []  # /tmp is shared: only what grading may have left
    assert not list(Path("/tmp").glob(f"{TOKEN}*"))
    assert not list(Path.home().glob(f"{TOKEN}*"))
    assert not list(ROOT.rglob(f"{TOKEN}*"))
    assert sorted(p.name for p in attacked["folder"].iterdir()) == sorted(
        f"{NAME[:3]}{case}.ipynb" for case in EXPECTED)


def test_hidden_tests_never_enter_the_sandbox():
    """The child's view of the file system holds no test, solution or archive."""
    if not SANDBOXED:
        pytest.skip("needs bubblewrap")
    import subprocess
    import sys

    from mmcourse.grading import sandbox

    script = ("import os\n"
              "hits = []\n"
              "for top, dirs, files in os.walk('/'):\n"
              "    if top in ('/proc', '/sys', '/dev', '/usr', '/etc'):\n"
              "        dirs[:] = []\n"
              "        continue\n"
              "    for name in dirs + files:\n"
              "        if name in ('solutions', 'autograders', 'solved', '.git', 'exercises')"
              " or name.endswith('-autograder.zip') or name.endswith('_cnn.py'):\n"
              "            hits.append(os.path.join(top, name))\n"
              f"print(len(hits), hits[:5], sorted(os.listdir({str(ROOT)!r})))\n")
    cmd = sandbox.bwrap_command([sandbox.python(), "-c", script],
                                {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(sandbox.package_parent())})
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 "), done.stdout
    # of the repository only the package is in view, and the virtual environment when
    # it lives inside the repository (as `make` creates it)
    expected = ["mmcourse"]
    prefix = Path(sys.prefix).resolve()
    if ROOT.resolve() in prefix.parents:
        expected.append(prefix.relative_to(ROOT.resolve()).parts[0])
    assert done.stdout.strip().endswith(str(sorted(expected))), done.stdout


def test_masters_name_their_exercise():
    for master in masters():
        meta = json.loads((ROOT / "exercises" / master.name).read_text())["metadata"]
        assert meta["otter"]["assignment_name"] == master.stem


def test_a_fork_bomb_is_stopped(tmp_path):
    """Processes that multiply are held by the process limit (where a cgroup can be made)
    and all end with the submission."""
    from mmcourse.grading import grade_submission, hidden

    exercise = nbformat.read(ROOT / "exercises" / f"{NAME}.ipynb", as_version=4)
    nb = copy.deepcopy(exercise)
    nb.cells.insert(1, nbformat.v4.new_code_cell(
        f"import os, time\n_tag = '{TOKEN}-bomb'\nfor _ in range(8):\n"
        "    try:\n        os.fork()\n    except OSError:\n        pass\ntime.sleep(600)"))
    path = tmp_path / f"{NAME}_bomb.ipynb"
    nbformat.write(nb, path)
    hidden.grading_mode(True)
    try:
        grade = grade_submission(path, ROOT / "grading" / "autograders" / f"{NAME}.zip",
                                 ROOT / "exercises" / f"{NAME}.ipynb", timeout=20,
                                 memory=MEMORY_GIB * 2**30)
    finally:
        hidden.grading_mode(False)
    assert grade.total == 0 and "time limit" in " ".join(grade.reasons), grade.reasons
    assert _children_running("mmcourse.grading.child") == []
