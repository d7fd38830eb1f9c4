"""What the submission's process can see and hold inside the sandbox.

One probe runs where a submission runs (:class:`mmcourse.grading.sandbox.Child` with the
probe's code in place of the grading child) and reports: its user inside and outside the
sandbox, the host files and environment it can read, how much ``/dev/shm`` takes, and
what happens to three processes that together ask for more memory than the limit.
"""
from __future__ import annotations

import ast
import os

import pytest

from mmcourse.grading import sandbox

MEMORY = 2**30
CANARY = "MMCOURSE_TEST_CANARY"

PROBE = r'''
import os, subprocess, sys
out = {"uid": os.getuid(), "euid": os.geteuid(),
       "uid_map": open("/proc/self/uid_map").read().split(),
       "etc": sorted(os.listdir("/etc")), "env": sorted(os.environ)}
for path in ("/etc/shadow", "/etc/gshadow", "/proc/1/environ", "/root"):
    try:
        (os.listdir if os.path.isdir(path) else lambda p: open(p, "rb").read())(path)
        out[path] = "read"
    except OSError as err:
        out[path] = type(err).__name__
written = 0
try:
    with open("/dev/shm/fill", "wb") as fh:
        for _ in range(200):
            fh.write(b"x" * 2**20)
            fh.flush()
            written += 1
except OSError:
    pass
out["shm_mb"] = written
os.remove("/dev/shm/fill")
hold = "b = bytearray(600 * 2**20); import time; time.sleep(4); print('held')"
procs = [subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE)
         for _ in range(3)]
out["spread"] = [p.stdout.read().decode().strip() for p in procs]
print(repr(out), flush=True)
'''


@pytest.fixture(scope="module")
def probe():
    if not sandbox.bwrap_works():
        assert not os.environ.get("CI"), sandbox.protection()
        pytest.skip(f"bubblewrap is not available here: {sandbox.protection()}")
    os.environ[CANARY] = "the grader's secret"
    try:
        child = sandbox.Child(memory=MEMORY, cpu_seconds=120, code=PROBE)
    finally:
        del os.environ[CANARY]
    try:
        text = child.proc.stdout.read().decode()
        assert child.status(wait=60) == 0, child.stderr_tail()
    finally:
        child.close()
    return ast.literal_eval(text.strip())


def test_the_child_is_nobody_outside_the_sandbox_too(probe):
    assert probe["uid"] == probe["euid"] == 65534
    if os.geteuid() == 0:  # no user namespace: the uid inside is the uid on the host
        assert probe["uid_map"] == ["0", "0", "4294967295"], probe["uid_map"]


def test_the_child_sees_only_the_etc_files_it_needs_and_no_secret(probe):
    assert set(probe["etc"]) <= set(sandbox.ETC_FILES), probe["etc"]
    assert "shadow" not in probe["etc"] and "gshadow" not in probe["etc"]
    assert probe["/etc/shadow"] == probe["/etc/gshadow"] == "FileNotFoundError"
    assert probe["/proc/1/environ"] == "PermissionError"  # bubblewrap's, not its own


def test_the_child_starts_from_an_empty_environment(probe):
    assert CANARY not in probe["env"]
    allowed = {"PATH", "HOME", "PWD", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE",
               "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "MPLBACKEND",
               "MPLCONFIGDIR", "MMCOURSE_CACHE", "MMCOURSE_CACHE_SHARED", "TMPDIR",
               sandbox.MARKER, *sandbox._PASS_ENV}
    assert set(probe["env"]) <= allowed, set(probe["env"]) - allowed


def test_dev_shm_is_small(probe):
    assert probe["shm_mb"] <= sandbox.SHM_BYTES // 2**20


def test_memory_spread_over_processes_meets_one_limit(probe):
    """Three processes of 600 MB each under a 1 GiB limit: with a memory control group
    at most one holds its memory to the end; with limits per process all three would."""
    if "memory" not in sandbox.cgroup_limits():
        pytest.skip("no memory control group can be made here (the limit holds per process)")
    assert probe["spread"].count("held") <= 1, probe["spread"]
