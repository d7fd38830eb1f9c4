"""Which of a chapter's findings hold: its assert cells run under several seeds and threads.

A chapter states a measured result in its prose and guards it with an ``assert`` in the
next code cell. A result that holds under one seed on one machine may be noise: a ranking
of methods a point apart flips when the seed, the number of math-library threads or the
processor changes the floating-point sums, and so the training path. :func:`check` runs
a chapter in fast mode once per configuration — every seed at the first thread count,
and the first seed at every other thread count — and reports, for every code cell that
asserts something, in which runs it held.

Each run executes the notebook with ``jupyter nbconvert --execute --allow-errors``, so a
failed assert does not stop the cells after it. Runs get a cache folder of their own (no
run reloads another's checkpoint), and read what does not depend on the seed — decoded
pictures, log-mel and frozen features — from the course cache, where each run leaves
what it computed for the next (:func:`_keep_shared`).

``python -m mmcourse claims notebooks/04_fusion.ipynb --seeds 0 1 2 --threads 1 2`` runs
it from the command line; ``make claims`` runs every chapter and writes
``benchmarks/claims.tsv``.
"""
from __future__ import annotations

import ast
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mmcourse.runtime import config

SEED_DEPENDENT = ("checkpoints",)
"""Cache kinds that a run must compute itself: trained weights depend on the seed and on
the thread count."""
COPY_PREFIX = ".claims-"
"""The executed copy of a chapter is ``.claims-<pid>-<name>`` beside it (git ignores it)."""
COLUMNS = ("chapter", "cell", "claim", "held", "runs", "failed in")
"""Columns of the claims table (:func:`write_table`)."""


@dataclass(frozen=True)
class Run:
    """One execution of a chapter: the ``MMCOURSE_SEED`` and ``OMP_NUM_THREADS`` it uses."""

    seed: int
    threads: int

    @property
    def name(self) -> str:
        return f"seed {self.seed}, {self.threads} thread{'s' if self.threads > 1 else ''}"


@dataclass
class Claim:
    """One assert cell of a chapter: its position, what it claims, and the runs (by name)
    in which it held or failed (with the error's first line)."""

    chapter: str
    cell: int
    """Index of the cell among the notebook's code cells (0-based, as nbval counts)."""
    text: str
    held: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def robust(self) -> bool:
        """Did the claim hold in every run?"""
        return not self.failed and bool(self.held)


def runs(seeds: list[int], threads: list[int]) -> list[Run]:
    """Every seed at the first thread count, then the first seed at each other count."""
    if not seeds or not threads:
        raise ValueError("give at least one seed and one thread count")
    return [Run(s, threads[0]) for s in seeds] + [Run(seeds[0], t) for t in threads[1:]]


def claim_text(source: str) -> str:
    """What an assert cell claims, in one line: the message of its first ``assert`` that
    has one (an f-string shown with its placeholders), else the first assert's test."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source.strip().splitlines()[0][:120]
    asserts = [node for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    for node in asserts:
        if isinstance(node.msg, ast.Constant) and isinstance(node.msg.value, str):
            return " ".join(node.msg.value.split())[:160]
        if isinstance(node.msg, ast.JoinedStr):
            return " ".join(ast.unparse(node.msg)[2:-1].split())[:160]
    return " ".join(ast.unparse(asserts[0].test).split())[:160] if asserts else ""


def assert_cells(notebook: dict) -> list[tuple[int, dict]]:
    """(code-cell index, cell) of every code cell whose source holds an ``assert``."""
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    out = []
    for index, cell in enumerate(code):
        source = "".join(cell["source"])
        try:
            found = any(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(source)))
        except SyntaxError:
            found = False
        if found:
            out.append((index, cell))
    return out


def outcome(cell: dict) -> str | None:
    """None when an executed cell raised nothing, else ``"Name: message"`` (first line)."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            message = (output.get("evalue") or "").strip().splitlines()
            return f"{output.get('ename')}: {message[0] if message else ''}"[:200]
    return None


def execute(notebook: Path, run: Run, workdir: Path, timeout: int = 3600) -> dict:
    """Execute ``notebook`` in fast mode under ``run`` (a cache folder of its own inside
    ``workdir``, the course cache read-only beside it) and return the executed notebook.

    Raises RuntimeError with nbconvert's own message when the notebook could not be run.
    """
    cache = workdir / f"cache-seed{run.seed}-threads{run.threads}"
    shutil.rmtree(cache, ignore_errors=True)
    chapter = re.sub(rf"^{re.escape(COPY_PREFIX)}\d+-", "", notebook.name)
    out = workdir / f"seed{run.seed}-threads{run.threads}-{chapter}"
    env = {**os.environ, "MMCOURSE_FAST": "1", "MMCOURSE_SEED": str(run.seed),
           "OMP_NUM_THREADS": str(run.threads), "MKL_NUM_THREADS": str(run.threads),
           "MMCOURSE_CACHE": str(cache), "MMCOURSE_CACHE_SHARED": str(config.cache_dir()),
           # idle math threads sleep instead of spinning: the same sums, but runs that
           # share the cores with other runs do not slow each other down many times over
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
               "--allow-errors", f"--ExecutePreprocessor.timeout={timeout}",
               "--output", str(out), str(notebook)]
    done = subprocess.run(command, env=env, cwd=notebook.parent, capture_output=True,
                          text=True)
    if done.returncode != 0 or not out.exists():
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{notebook.name} ({run.name}) could not be executed:\n{tail}")
    _keep_shared(cache, config.cache_dir())
    shutil.rmtree(cache, ignore_errors=True)
    return json.loads(out.read_text(encoding="utf-8"))


def _keep_shared(run_cache: Path, shared: Path) -> None:
    """Move the seed-independent entries a run computed (everything but
    :data:`SEED_DEPENDENT`) into the shared cache, for the runs after it."""
    for path in sorted(run_cache.rglob("*")):
        relative = path.relative_to(run_cache)
        if not path.is_file() or relative.parts[0] in SEED_DEPENDENT or ".partial" in path.name:
            continue
        target = shared / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(target))


def check(notebook: Path, seeds: list[int], threads: list[int], jobs: int = 1,
          workdir: Path | None = None, log=print) -> list[Claim]:
    """Run ``notebook`` under every configuration of :func:`runs` (``jobs`` at a time;
    the first run alone first, so that the others find its features cached) and return
    its claims with the runs each held in."""
    notebook = Path(notebook).resolve()
    source = json.loads(notebook.read_text(encoding="utf-8"))
    plan = runs(seeds, threads)
    with tempfile.TemporaryDirectory(prefix="mmcourse-claims-") as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        # Every run executes the same copy, beside the original so that relative paths
        # resolve, even if the chapter is edited while the runs go on.
        copy = notebook.with_name(f"{COPY_PREFIX}{os.getpid()}-{notebook.name}")
        copy.write_text(json.dumps(source), encoding="utf-8")

        def one(run: Run) -> tuple[Run, dict]:
            log(f"{notebook.stem}: {run.name} …")
            return run, execute(copy, run, work)

        try:
            executed = [one(plan[0])]
            with ThreadPoolExecutor(max(1, jobs)) as pool:
                executed += list(pool.map(one, plan[1:]))
        finally:
            copy.unlink(missing_ok=True)
    claims = {index: Claim(notebook.stem, index, claim_text("".join(cell["source"])))
              for index, cell in assert_cells(source)}
    for run, result in executed:
        cells = dict(assert_cells(result))
        for index, claim in claims.items():
            problem = outcome(cells[index]) if index in cells else "cell missing"
            if problem is None:
                claim.held.append(run.name)
            else:
                claim.failed[run.name] = problem
    return list(claims.values())


def rows(claims: list[Claim], total: int) -> list[dict]:
    """The claims as table rows (:data:`COLUMNS`); ``total`` is the number of runs."""
    return [{"chapter": c.chapter, "cell": c.cell, "claim": c.text,
             "held": f"{len(c.held)}/{total}", "runs": "; ".join(c.held),
             "failed in": "; ".join(f"{run} ({why})" for run, why in c.failed.items())}
            for c in claims]


def write_table(path: Path, table: list[dict]) -> None:
    """Write ``table`` (rows of :func:`rows`) as tab-separated values, replacing the
    rows of the chapters it holds and keeping the others, sorted by chapter and cell."""
    path = Path(path)
    kept = []
    if path.exists():
        with path.open(encoding="utf-8", newline="") as f:
            chapters = {row["chapter"] for row in table}
            kept = [row for row in csv.DictReader(f, delimiter="\t")
                    if row["chapter"] not in chapters]
    merged = sorted(kept + table, key=lambda r: (r["chapter"], int(r["cell"])))
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(merged)


def report(claims: list[Claim], total: int) -> str:
    """One line per claim: held n/total, the cell, the claim, and where it failed."""
    lines = []
    for c in claims:
        mark = "ok  " if c.robust else "FAIL"
        line = f"{mark} {c.chapter} cell {c.cell}: held {len(c.held)}/{total} — {c.text}"
        if c.failed:
            line += "\n       failed in " + "; ".join(f"{r} ({w})" for r, w in c.failed.items())
        lines.append(line)
    return "\n".join(lines)
