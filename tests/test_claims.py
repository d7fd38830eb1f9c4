"""The claims check: a chapter's assert cells run under several seeds and thread counts."""
from __future__ import annotations


import nbformat
import pytest

from mmcourse import claims
from mmcourse.__main__ import main
from mmcourse.runtime import config


def test_the_plan_is_every_seed_at_one_thread_then_the_first_seed_at_other_counts():
    plan = claims.runs([0, 1, 2], [1, 2])
    assert [(r.seed, r.threads) for r in plan] == [(0, 1), (1, 1), (2, 1), (0, 2)]
    assert plan[-1].name == "seed 0, 2 threads" and plan[0].name == "seed 0, 1 thread"
    with pytest.raises(ValueError, match="at least one seed"):
        claims.runs([], [1])


def test_a_claim_is_named_by_its_first_assert_message():
    assert claims.claim_text('x = 1\nassert x > 0, "x should be positive"') \
        == "x should be positive"
    assert claims.claim_text('assert x > 0\nassert y, f"y is {y}"') == "y is {y}"
    assert claims.claim_text("assert a < b") == "a < b"


def test_only_cells_that_assert_are_claims_and_errors_are_read_from_outputs():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("assert in prose"),
        nbformat.v4.new_code_cell("x = 'assert'"),
        nbformat.v4.new_code_cell("assert 1 == 1"),
    ])
    found = claims.assert_cells(nb)
    assert [index for index, _ in found] == [1]
    cell = {"outputs": [{"output_type": "error", "ename": "AssertionError",
                         "evalue": "gap too small\nmore"}]}
    assert claims.outcome(cell) == "AssertionError: gap too small"
    assert claims.outcome({"outputs": [{"output_type": "stream", "text": "ok"}]}) is None


CHAPTER = [
    "import os, pathlib\n"
    "seed, threads = int(os.environ['MMCOURSE_SEED']), os.environ['OMP_NUM_THREADS']\n"
    "cache = pathlib.Path(os.environ['MMCOURSE_CACHE'])",
    "assert seed == 0, 'holds only under seed 0'",
    "checkpoint = cache / 'checkpoints' / 'model.pt'\n"
    "assert not checkpoint.exists(), 'no run reloads another run\\'s checkpoint'\n"
    "checkpoint.parent.mkdir(parents=True, exist_ok=True); checkpoint.write_text(str(seed))",
    "(cache / 'features').mkdir(exist_ok=True)\n"
    "(cache / 'features' / 'f.npz').write_text('same for every seed')\n"
    "assert threads in ('1', '2'), 'the thread count is set'",
    "raise ValueError('not a claim')",
    "assert 1 / 0, 'an error that is not an assert failure'",
]


def test_check_runs_a_notebook_per_configuration_and_reports_where_each_claim_held(
        tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path / "course-cache"))
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(src) for src in CHAPTER]), path)
    found = claims.check(path, [0, 1], [1, 2], jobs=2, workdir=tmp_path / "runs")
    by_text = {c.text: c for c in found}
    assert set(by_text) == {"holds only under seed 0", "no run reloads another run's checkpoint",
                            "the thread count is set", "an error that is not an assert failure"}
    only_zero = by_text["holds only under seed 0"]
    assert only_zero.held == ["seed 0, 1 thread", "seed 0, 2 threads"] and not only_zero.robust
    assert only_zero.failed == {"seed 1, 1 thread": "AssertionError: holds only under seed 0"}
    assert by_text["no run reloads another run's checkpoint"].robust
    assert by_text["the thread count is set"].robust
    broken = by_text["an error that is not an assert failure"]
    assert set(broken.failed) == {r.name for r in claims.runs([0, 1], [1, 2])}
    assert all(why.startswith("ZeroDivisionError") for why in broken.failed.values())
    # seed-independent entries reach the course cache; checkpoints stay with their run
    assert (config.cache_dir() / "features" / "f.npz").exists()
    assert not (config.cache_dir() / "checkpoints" / "model.pt").exists()
    assert not list(tmp_path.glob(".claims-*")), "the executed copy is removed"
    kept = sorted(p.name for p in (tmp_path / "runs").glob("*.ipynb"))
    assert kept == ["seed0-threads1-chapter.ipynb", "seed0-threads2-chapter.ipynb",
                    "seed1-threads1-chapter.ipynb"]

    table = tmp_path / "claims.tsv"
    claims.write_table(table, claims.rows(found, 3))
    claims.write_table(table, [{**claims.rows(found, 3)[0], "chapter": "other"}])
    lines = table.read_text().splitlines()
    assert lines[0].split("\t") == list(claims.COLUMNS)
    assert len(lines) == 1 + len(found) + 1, "rows of other chapters are kept"
    assert "\tholds only under seed 0\t2/3\t" in table.read_text()


def test_the_command_line_refuses_a_missing_notebook(tmp_path, capsys):
    assert main(["claims", str(tmp_path / "nope.ipynb")]) == 2
    assert "no notebook" in capsys.readouterr().err


def test_a_notebook_that_cannot_run_is_an_error_not_a_result(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path / "course-cache"))
    path = tmp_path / "broken.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert True")])
    nb.metadata["kernelspec"] = {"name": "no-such-kernel", "display_name": "none",
                                 "language": "python"}
    nbformat.write(nb, path)
    with pytest.raises(RuntimeError, match="could not be executed"):
        claims.check(path, [0], [1], workdir=tmp_path / "runs")


def test_the_committed_table_covers_every_chapter_claim_and_each_held_in_every_run():
    import csv
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    rows = list(csv.DictReader((root / "benchmarks" / "claims.tsv").open(encoding="utf-8"),
                               delimiter="\t"))
    table = {(r["chapter"], int(r["cell"])): r for r in rows}
    chapters = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    expected = {}
    for path in chapters:
        notebook = nbformat.read(path, as_version=4)
        for index, cell in claims.assert_cells(notebook):
            expected[path.stem, index] = claims.claim_text("".join(cell["source"]))
    missing = sorted(set(expected) - set(table))
    assert not missing, f"assert cells not in benchmarks/claims.tsv (run make claims): {missing}"
    stale = sorted(k for k in table if k not in expected or table[k]["claim"] != expected[k])
    assert not stale, f"rows of benchmarks/claims.tsv that no longer match their cell: {stale}"
    assert all(r["held"] == "4/4" for r in rows), [r for r in rows if r["held"] != "4/4"]
