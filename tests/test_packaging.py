"""Packaging checks: conda and pip agree, notebooks match their jupytext sources."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _requirement_names(requirements) -> dict:
    out = {}
    for req in requirements:
        name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", req.strip()).groups()
        out[name.lower().replace("_", "-")] = spec.replace(" ", "")
    return out


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _requirement_names(project["dependencies"]
                                + project["optional-dependencies"]["dev"])
    pip_lines = []
    in_pip = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.strip() == "- pip:":
            in_pip = True
        elif in_pip and line.strip().startswith("- "):
            pip_lines.append(line.strip()[2:])
    assert _requirement_names(pip_lines) == wanted


def test_dependencies_have_lower_bounds_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
        assert ">=" in req and "<" not in req.replace(">=", "") and "==" not in req, req


SOURCES = sorted((ROOT / "notebooks").glob("[0-9]*.py")) + sorted(
    (ROOT / "solutions").glob("[0-9]*.py"))


@pytest.mark.parametrize("source", SOURCES, ids=[f"{s.parent.name}/{s.stem}" for s in SOURCES])
def test_notebook_in_sync_with_its_source(source):
    import jupytext
    import nbformat

    notebook = source.with_suffix(".ipynb")
    assert notebook.exists(), f"run `make notebooks` or `make exercises` to create {notebook.name}"
    expected = jupytext.read(source)
    actual = nbformat.read(notebook, as_version=4)
    pairs = list(zip(expected.cells, actual.cells))
    assert len(expected.cells) == len(actual.cells), f"{notebook.name}: cell count differs"
    for i, (want, have) in enumerate(pairs):
        assert want.cell_type == have.cell_type, f"{notebook.name} cell {i}"
        assert want.source == have.source, f"{notebook.name} cell {i} differs from {source.name}"
        if want.cell_type == "code":
            assert want.metadata.get("tags", []) == have.metadata.get("tags", [])


def test_every_chapter_has_an_exercise_master():
    chapters = {p.stem for p in (ROOT / "notebooks").glob("[0-9]*.py")}
    masters = {p.stem[:2] for p in (ROOT / "solutions").glob("[0-9]*.py")}
    assert {c[:2] for c in chapters} <= masters, "write solutions/NN_*.py for every chapter"


@pytest.mark.parametrize("source", SOURCES, ids=[f"{s.parent.name}/{s.stem}" for s in SOURCES])
def test_notebook_committed_with_outputs_in_order(source):
    import nbformat

    nb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in code]
    assert None not in counts, "every code cell has been run"
    assert counts == sorted(counts) and len(set(counts)) == len(counts), "run top to bottom"
    if source.parent.name == "notebooks":
        assert any(c.outputs for c in code), "chapters are committed with their outputs"
    errors = [c for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, "no cell raised"


def test_there_are_notebooks():
    assert SOURCES, "notebooks/ holds no chapter"
