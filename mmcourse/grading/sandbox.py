"""Start the submission's process in a sandbox, and end it with everything it started.

With bubblewrap (``bwrap``, Debian's ``bubblewrap`` package) the child gets its own PID,
network, IPC and UTS namespaces and sees a read-only file system made of the system
(``/usr``, a few files of ``/etc``), the Python installation, the ``mmcourse`` package
and the data, and nothing else of the machine: not the course repository (masters,
autograder archives, git history), not the submissions, not the grader's home. Its
working folder (``/sandbox``, also its home), ``/tmp`` and a small ``/dev/shm`` are
private in-memory file systems that vanish with it. When the grader runs as root, the
child runs as the real user ``nobody`` (``setpriv`` drops to it inside the sandbox, with
no capabilities left), so outside the sandbox too it is nobody, not root; otherwise it
runs under the grader's own user, mapped to ``nobody`` in a user namespace. When the PID
namespace's first process ends, the kernel ends every process in it, ``setsid`` or not.
It starts from an empty environment.

Without bubblewrap the child runs under resource limits only, in a private temporary
folder removed afterwards, as ``nobody`` where the grader runs as root and ``nobody`` can
run Python; every process that carries the run's marker in its environment is killed at
the end. :func:`protection` says which of these is in force.

Either way the child has a limit on its address space (``RLIMIT_AS``), on CPU time, on
the size of files it writes, and no core dumps; where the grader may make control groups
(cgroup v1 or v2, under its own), the whole sandbox also shares one memory limit and one
process limit, so memory spread over many processes is held too.
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
SHM_BYTES = 64 * 2**20
"""Size of the child's ``/dev/shm`` (shared memory for its own processes only)."""
FILE_BYTES = 256 * 2**20
MAX_PROCESSES = 256
"""Processes and threads the child may have at once, where a pids cgroup can be made."""
CGROUP_ROOT = Path("/sys/fs/cgroup")
ETC_FILES = ("passwd", "group", "nsswitch.conf", "ld.so.cache", "ld.so.conf",
             "ld.so.conf.d", "localtime", "alternatives", "fonts", "mime.types")
"""The files of ``/etc`` the child sees (no ``shadow``, no keys, no host configuration)."""
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


def _setpriv() -> str | None:
    """``setpriv`` (util-linux) where the grader runs as root and can use it to become
    ``nobody`` inside the sandbox; None otherwise."""
    if os.geteuid() != 0 or _nobody() is None:
        return None
    return shutil.which("setpriv")


def _parents(paths: list[Path]) -> list[Path]:
    """Every folder above ``paths`` (outside ``/usr``), shallowest first, so the sandbox
    can make them traversable even where the host's are not (``/root`` is ``0700``)."""
    found = {parent for path in paths for parent in path.parents
             if parent != Path("/") and not str(parent).startswith("/usr")}
    return sorted(found, key=lambda p: (len(p.parts), str(p)))


def bwrap_command(argv: list[str], env: dict) -> list[str]:
    """The bubblewrap command line that runs ``argv`` with exactly ``env`` in the
    sandbox described in the module's documentation."""
    setpriv = _setpriv()
    cmd = [_bwrap(), "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
           "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if setpriv is not None:  # root outside: keep only what setpriv needs to become nobody
        cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                "--cap-add", "CAP_SETPCAP"]
        uid, gid = _nobody()
        argv = [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--", *argv]
    else:
        cmd += ["--unshare-user", "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL"]
    cmd += ["--ro-bind", "/usr", "/usr", "--perms", "0755", "--dir", "/etc"]
    for name in ETC_FILES:
        if os.path.lexists(f"/etc/{name}"):
            cmd += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        top = Path("/") / name
        if top.is_symlink():
            cmd += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            cmd += ["--ro-bind", str(top), str(top)]
    cmd += ["--dev", "/dev", "--proc", "/proc",
            "--size", str(SHM_BYTES), "--perms", "1777", "--tmpfs", "/dev/shm",
            "--size", str(TMPFS_BYTES), "--perms", "1777", "--tmpfs", "/tmp",
            "--size", str(TMPFS_BYTES), "--perms", "1777", "--tmpfs", WORK]
    paths = _read_only_paths()
    for parent in _parents(paths):
        cmd += ["--perms", "0755", "--dir", str(parent)]
    for path in paths:
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


def _own_cgroup(controller: str) -> Path | None:
    """The folder of this process's control group that holds ``controller`` (``memory``,
    ``pids``): its cgroup v1 hierarchy, else the unified (v2) one; None where neither is
    mounted."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    unified = None
    for line in lines:
        _, names, where = line.split(":", 2)
        if controller in names.split(","):
            folder = CGROUP_ROOT / names / where.lstrip("/")
            return folder if folder.is_dir() else None
        if names == "":
            unified = CGROUP_ROOT / where.lstrip("/")
    if unified is not None and (CGROUP_ROOT / "cgroup.controllers").exists():
        try:
            (unified / "cgroup.subtree_control").write_text(f"+{controller}")
        except OSError:
            return None
        return unified
    return None


def _limits(controller: str, memory: int) -> list[tuple[str, str]]:
    """The files (v1 or v2 names) and values that set ``controller``'s limit."""
    if controller == "pids":
        return [("pids.max", str(MAX_PROCESSES))]
    return [("memory.limit_in_bytes", str(memory)), ("memory.memsw.limit_in_bytes", str(memory)),
            ("memory.max", str(memory)), ("memory.swap.max", "0")]


def _cgroups(marker: str, memory: int) -> dict[str, Path]:
    """New control groups for one child, {controller: folder} for each controller
    (memory, pids) that can be made here with its limit written (under cgroup v2 both
    share one folder); the whole sandbox is then held together."""
    made: dict[str, Path] = {}
    for controller in ("memory", "pids"):
        base = _own_cgroup(controller)
        if base is None:
            continue
        path = base / f"mmcourse-grade-{marker}"
        try:
            path.mkdir(exist_ok=path in made.values())
        except OSError:
            continue
        written = 0
        for name, value in _limits(controller, memory):
            try:
                if (path / name).exists():
                    (path / name).write_text(value)
                    written += 1
            except OSError:
                pass
        if written:
            made[controller] = path
        elif path not in made.values():
            _empty(path)
    return made


@functools.lru_cache(maxsize=1)
def cgroup_limits() -> tuple[str, ...]:
    """Which of the shared limits (``memory``, ``pids``) control groups give here."""
    made = _cgroups(secrets.token_hex(6), DEFAULT_MEMORY)
    for path in set(made.values()):
        _empty(path)
    return tuple(sorted(made))


def _shared_limits() -> str:
    words = {"memory": "one memory limit for all its processes",
             "pids": f"at most {MAX_PROCESSES} processes"}
    found = [words[name] for name in cgroup_limits()]
    return f", {' and '.join(found)} (cgroup)" if found else (
        "; no control group can be made here, so the memory limit holds per process")


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
        who = ("user nobody inside and outside" if _setpriv() is not None
               else "the grader's user, seen as nobody inside")
        return (f"bubblewrap: {who}, own PID, network and IPC namespaces, no capabilities, "
                "read-only system view without the course's tests, empty environment, "
                "private in-memory working folder; plus memory, CPU and file-size limits"
                + _shared_limits())
    user = _drop_user()
    base = ("resource limits (memory, CPU, file size), own process group, private temporary "
            "folder" + _shared_limits())
    if user is not None:
        return f"no bubblewrap: {base}, user nobody; the file system is visible as to nobody"
    return (f"no bubblewrap: {base}; same user as the grader, so the child can read and write "
            "what the grader can (install bubblewrap)")


class Child:
    """The running child: its process, its private folder, and how to end it.

    ``code``, when given, is Python source run in place of the grading child (the tests
    probe the sandbox with it); its standard output is ``self.proc.stdout``."""

    def __init__(self, memory: int = DEFAULT_MEMORY, cpu_seconds: float = 600,
                 code: str | None = None):
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
        argv = [python() if self.sandboxed else sys.executable, "-s",
                *(["-c", code] if code is not None else ["-m", "mmcourse.grading.child"])]
        user = None if self.sandboxed else _drop_user()
        if self.folder is not None and user is not None:
            os.chown(self.folder, *user)
        limits = [(resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, int(cpu_seconds) + 1),
                  (resource.RLIMIT_FSIZE, FILE_BYTES), (resource.RLIMIT_CORE, 0)]
        self.cgroups = _cgroups(self.marker, memory)
        procs = [str(path / "cgroup.procs") for path in set(self.cgroups.values())]

        def prepare():
            for name in procs:
                try:
                    with open(name, "w") as fh:
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
                                     env={"PATH": "/usr/bin:/bin"} if self.sandboxed else env,
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
        for path in set(self.cgroups.values()):
            _empty(path)
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
