"""Start the submission's process in a sandbox, and end it with everything it started.

With bubblewrap (``bwrap``, Debian's ``bubblewrap`` package) the child gets its own
user, PID, network, IPC and UTS namespaces, runs as ``nobody`` with no capabilities,
and sees a read-only file system made of the system (``/usr``, ``/etc``), the Python
installation, the ``mmcourse`` package and the data, and nothing else of the machine:
not the course repository (masters, autograder archives, git history), not the
submissions, not the grader's home. Its working folder (``/sandbox``, also its home) and
``/tmp`` are private in-memory file systems that vanish with it. When the PID namespace's
first process ends, the kernel ends every process in it, ``setsid`` or not.

Without bubblewrap the child runs under resource limits only, in a private temporary
folder removed afterwards, as ``nobody`` where the grader runs as root and ``nobody`` can
run Python; every process that carries the run's marker in its environment is killed at
the end. :func:`protection` says which of these is in force.

Either way the child has a limit on its address space (``RLIMIT_AS``), on CPU time, on
the size of files it writes, and no core dumps.
"""
from __future__ import annotations

import functools
import os
import pwd
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_MEMORY = 6 * 2**30
"""Bytes of address space the submission's process may use."""
WORK = "/sandbox"
"""The child's private working folder (and home) inside bubblewrap."""
TMPFS_BYTES = 512 * 2**20
FILE_BYTES = 256 * 2**20
MAX_PROCESSES = 256
"""Processes and threads the child may have at once, where a pids cgroup can be made."""
PIDS_CGROUP = Path("/sys/fs/cgroup/pids")
MARKER = "MMCOURSE_GRADING_RUN"
"""Environment variable that marks every process of one run (see :func:`reap`)."""
_PASS_ENV = ("MMCOURSE_DATA_ROOT", "MMCOURSE_FAST", "CI", "LANG", "LC_ALL", "TZ",
             "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def package_parent() -> Path:
    """The folder that holds the ``mmcourse`` package in use."""
    return Path(__file__).resolve().parents[2]


def _shared_cache() -> Path:
    base = os.environ.get("MMCOURSE_CACHE", str(Path.home() / ".cache" / "mmcourse"))
    return Path(base).expanduser().resolve()


def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _nobody() -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def python() -> str:
    """The interpreter with its folder's real path: a virtual environment reached through a
    symbolic link (a ``.venv`` link to a shared one) is bound into the sandbox by its real
    path, so the child must start from there to find it."""
    exe = Path(sys.executable)
    return str(exe.parent.resolve() / exe.name)


def _read_only_paths() -> list[Path]:
    """Folders the child sees, read-only: Python, the package, the data, the cache."""
    paths = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent,
             package_parent() / "mmcourse", _shared_cache()]
    data_root = os.environ.get("MMCOURSE_DATA_ROOT")
    if data_root:
        paths.append(Path(data_root).expanduser().resolve())
    for entry in sys.path:  # site-packages outside the prefixes (a user's, a conda's)
        if entry.endswith("site-packages") and Path(entry).is_dir():
            paths.append(Path(entry).resolve())
    seen, out = set(), []
    for path in paths:
        path = path.resolve()
        if str(path) in seen or not path.exists() or str(path).startswith("/usr/"):
            continue
        seen.add(str(path))
        out.append(path)
    return sorted(out, key=lambda p: len(p.parts))


def bwrap_command(argv: list[str], env: dict) -> list[str]:
    cmd = [_bwrap(), "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
           "--cap-drop", "ALL", "--die-with-parent", "--new-session",
           "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        top = Path("/") / name
        if top.is_symlink():
            cmd += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            cmd += ["--ro-bind", str(top), str(top)]
    cmd += ["--dev", "/dev", "--proc", "/proc",
            "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp",
            "--size", str(TMPFS_BYTES), "--tmpfs", WORK]
    for path in _read_only_paths():
        cmd += ["--ro-bind", str(path), str(path)]
    cmd += ["--chdir", WORK, "--clearenv"]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return cmd + ["--", *argv]


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    if _bwrap() is None:
        return False
    try:
        done = subprocess.run(bwrap_command([python(), "-c", "import mmcourse"],
                                            {"PATH": "/usr/bin:/bin",
                                             "PYTHONPATH": str(package_parent())}),
                              capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@functools.lru_cache(maxsize=1)
def _drop_user() -> tuple[int, int] | None:
    """(uid, gid) of ``nobody`` when running as root and ``nobody`` can run Python."""
    ids = _nobody()
    if os.geteuid() != 0 or ids is None:
        return None
    try:
        done = subprocess.run([sys.executable, "-c", "import mmcourse"], capture_output=True,
                              timeout=120, cwd="/", env={"PYTHONPATH": str(package_parent())},
                              preexec_fn=lambda: _become(ids), check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return ids if done.returncode == 0 else None


def _become(ids: tuple[int, int]) -> None:
    os.setgroups([])
    os.setgid(ids[1])
    os.setuid(ids[0])


def _pids_cgroup(marker: str) -> Path | None:
    """A new cgroup (v1 pids controller) for one child, or None where none can be made."""
    try:
        if not (PIDS_CGROUP / "cgroup.procs").exists():
            return None
        path = PIDS_CGROUP / f"mmcourse-grade-{marker}"
        path.mkdir()
        (path / "pids.max").write_text(str(MAX_PROCESSES))
        return path
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def _cgroups_work() -> bool:
    path = _pids_cgroup(secrets.token_hex(6))
    if path is None:
        return False
    try:
        path.rmdir()
    except OSError:
        pass
    return True


class SandboxUnavailable(RuntimeError):
    """Bubblewrap is missing or cannot start here, and grading without it was not asked
    for."""


def require(allow_unsandboxed: bool = False) -> None:
    """Raise :class:`SandboxUnavailable` unless the child can run under bubblewrap or the
    instructor allowed grading without it."""
    if not allow_unsandboxed and not bwrap_works():
        raise SandboxUnavailable(
            "bubblewrap is not installed or cannot start a sandbox here, so a submission "
            "could read other submissions and the solutions: install it (apt install "
            "bubblewrap) or grade without it on purpose (--no-sandbox)")


def protection() -> str:
    """Which sandbox is in force, in words."""
    if bwrap_works():
        return ("bubblewrap: own user (nobody), PID, network and IPC namespaces, no "
                "capabilities, read-only system view without the course's tests, private "
                "in-memory working folder; plus memory, CPU and file-size limits"
                + (f", at most {MAX_PROCESSES} processes (cgroup)" if _cgroups_work() else ""))
    user = _drop_user()
    base = "resource limits (memory, CPU, file size), own process group, private temporary folder"
    if _cgroups_work():
        base += f", at most {MAX_PROCESSES} processes (cgroup)"
    if user is not None:
        return f"no bubblewrap: {base}, user nobody; the file system is visible as to nobody"
    return (f"no bubblewrap: {base}; same user as the grader, so the child can read and write "
            "what the grader can (install bubblewrap)")


class Child:
    """The running child: its process, its private folder, and how to end it."""

    def __init__(self, memory: int = DEFAULT_MEMORY, cpu_seconds: float = 600):
        self.marker = secrets.token_hex(12)
        self.sandboxed = bwrap_works()
        self.folder = None if self.sandboxed else Path(tempfile.mkdtemp(prefix="mmcourse-grade-"))
        home = WORK if self.sandboxed else str(self.folder)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home,
               "PYTHONPATH": str(package_parent()), "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONNOUSERSITE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "CUDA_VISIBLE_DEVICES": "", "MPLBACKEND": "Agg",
               "MPLCONFIGDIR": f"{home}/.matplotlib", "MMCOURSE_CACHE": f"{home}/.cache",
               "MMCOURSE_CACHE_SHARED": str(_shared_cache()), "TMPDIR": "/tmp",
               MARKER: self.marker}
        env.update({k: os.environ[k] for k in _PASS_ENV if k in os.environ})
        argv = [python() if self.sandboxed else sys.executable, "-s", "-m",
                "mmcourse.grading.child"]
        user = None if self.sandboxed else _drop_user()
        if self.folder is not None and user is not None:
            os.chown(self.folder, *user)
        limits = [(resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, int(cpu_seconds) + 1),
                  (resource.RLIMIT_FSIZE, FILE_BYTES), (resource.RLIMIT_CORE, 0)]
        self.cgroup = _pids_cgroup(self.marker)
        procs = None if self.cgroup is None else str(self.cgroup / "cgroup.procs")

        def prepare():
            if procs is not None:
                try:
                    with open(procs, "w") as fh:
                        fh.write(str(os.getpid()))
                except OSError:
                    pass
            for which, value in limits:
                resource.setrlimit(which, (value, value))
            if user is not None:
                _become(user)

        cmd = bwrap_command(argv, env) if self.sandboxed else argv
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, cwd=self.folder or "/",
                                     env=None if self.sandboxed else env,
                                     start_new_session=True, preexec_fn=prepare)
        self.requests = self.proc.stdin.fileno()
        self.replies = self.proc.stdout.fileno()
        os.set_blocking(self.requests, False)

    def status(self, wait: float = 2.0) -> int | None:
        """The exit status (negative: killed by that signal), or None while it runs."""
        try:
            return self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None

    def stderr_tail(self, size: int = 2000) -> str:
        self.stderr.seek(0, os.SEEK_END)
        end = self.stderr.tell()
        self.stderr.seek(max(0, end - size))
        return self.stderr.read().decode("utf-8", "replace")

    def close(self) -> None:
        """Kill the child, its process group and every process of this run; remove the
        private folder."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        reap(self.marker)
        if self.cgroup is not None:
            _empty(self.cgroup)
        self.stderr.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _empty(cgroup: Path, rounds: int = 100) -> None:
    """Kill every process in ``cgroup``, then remove it."""
    for _ in range(rounds):
        try:
            pids = [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            break
        _kill(pids)
        time.sleep(0.02)
    try:
        cgroup.rmdir()
    except OSError:
        pass


def marked(marker: str) -> list[int]:
    """Processes whose environment holds ``MMCOURSE_GRADING_RUN=marker``."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def reap(marker: str, rounds: int = 20) -> None:
    """Kill every process of the run ``marker`` (also those that left its session)."""
    for _ in range(rounds):
        pids = marked(marker)
        if not pids:
            return
        _kill(pids)
        time.sleep(0.05)


def _kill(pids: list[int]) -> None:
    """SIGKILL each process of ``pids`` that still exists and may be killed."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
