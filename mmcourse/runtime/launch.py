"""Where a notebook opens: the Colab and Binder badges and the Colab install cell.

The repository's address lives in one place, ``[project.urls] Repository`` in
``pyproject.toml``. :func:`sync` writes it into the first markdown cell of every notebook
(``notebooks/``, ``solutions/`` and ``exercises/``, the jupytext sources and the executed
``.ipynb`` files alike) and into the ``pip install`` line of their install cells;
``python -m mmcourse badges`` runs it, ``--check`` only reports what is out of date.

A solved master in ``solutions/`` carries the badges of the exercise it generates: what a
learner opens is the exercise.
"""
from __future__ import annotations

import json
import re
import tomllib
from importlib import metadata
from pathlib import Path

import nbformat

BADGE_LINE = re.compile(r"^(?P<prefix>#? ?)\[!\[Open In Colab\].*$", re.MULTILINE)
INSTALL_URL = re.compile(r"git\+https://[^\s\"']+")
FOLDERS = ("notebooks", "solutions", "exercises")


def repository_root() -> Path:
    """The repository that holds this package (its parent folder)."""
    return Path(__file__).resolve().parent.parent


def repository_url(root: Path | None = None) -> str:
    """The repository's web address, from ``pyproject.toml`` (or the installed metadata).

    >>> repository_url().startswith("https://github.com/")
    True
    """
    pyproject = (root or repository_root()) / "pyproject.toml"
    if pyproject.exists():
        urls = tomllib.loads(pyproject.read_text())["project"]["urls"]
        return urls["Repository"].rstrip("/")
    for entry in metadata.metadata("mmcourse").get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip() == "Repository":
            return url.strip().rstrip("/")
    raise LookupError("no Repository URL in pyproject.toml or in mmcourse's metadata")


def _github_slug(url: str) -> str:
    match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(\.git)?", url)
    if not match:
        raise ValueError(f"{url!r} is not a GitHub repository address "
                         "(https://github.com/OWNER/NAME); Colab and Binder need one")
    return match.group(1)


def opened_path(path: str) -> str:
    """The notebook a learner opens for repository path ``path``: a solved master
    ``solutions/NN_x.py`` opens as ``exercises/NN_x.ipynb``; any other source opens as
    its ``.ipynb``."""
    p = Path(path)
    folder = "exercises" if p.parts[0] == "solutions" else p.parts[0]
    return f"{folder}/{p.stem}.ipynb"


def badges(path: str, url: str | None = None) -> str:
    """The markdown line with the "Open in Colab" and "Launch Binder" badges of the
    notebook at repository path ``path`` (for example ``notebooks/01_cnn.ipynb``)."""
    slug = _github_slug(url or repository_url())
    target = opened_path(path)
    colab = f"https://colab.research.google.com/github/{slug}/blob/main/{target}"
    binder = f"https://mybinder.org/v2/gh/{slug}/main?labpath={target}"
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab}) [![Launch Binder](https://mybinder.org/badge_logo.svg)]({binder})")


def install_requirement(url: str | None = None) -> str:
    """The pip requirement that installs this course from its repository (Colab)."""
    return f"mmcourse[dev] @ git+{url or repository_url()}"


def _synced(text: str, path: str, url: str) -> str:
    line = badges(path, url)
    text = BADGE_LINE.sub(lambda m: m.group("prefix") + line, text, count=1)
    return INSTALL_URL.sub(f"git+{url}", text)


def _wanted(path: Path, rel: str, url: str) -> str:
    """The text of notebook file ``path`` with its badges and install URL synced."""
    if path.suffix == ".py":
        return _synced(path.read_text(), rel, url)

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.source = _synced(cell.source, rel, url)
    return nbformat.writes(nb) + "\n"


def _sources(path: Path) -> str:
    """The cell sources of notebook ``path``, one after the other."""
    return "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)


def _differs(path: Path, wanted: str, text: str) -> bool:
    if path.suffix == ".py":
        return wanted != text
    return json.loads(wanted) != json.loads(text)


def notebook_files(root: Path | None = None) -> list[Path]:
    """Every chapter, master and exercise notebook file (``NN_*.py`` and ``NN_*.ipynb``)."""
    root = root or repository_root()
    files = []
    for folder in FOLDERS:
        files += sorted((root / folder).glob("[0-9][0-9]_*.py"))
        files += sorted((root / folder).glob("[0-9][0-9]_*.ipynb"))
    return files


def problems(root: Path | None = None) -> list[str]:
    """What is wrong with the notebooks' badges and install cells, one line per file:
    a missing badge line or install cell, or one that is not what :func:`sync` writes."""
    root = root or repository_root()
    url = repository_url(root)
    found = []
    for path in notebook_files(root):
        rel = path.relative_to(root).as_posix()
        text = path.read_text()
        shown = _sources(path) if path.suffix == ".ipynb" else text
        if not BADGE_LINE.search(shown):
            found.append(f"{rel}: no 'Open In Colab' badge line")
        elif "mybinder.org/v2/gh/" not in shown:
            found.append(f"{rel}: no Binder badge")
        if not INSTALL_URL.search(shown):
            found.append(f"{rel}: no install cell (pip install '{install_requirement(url)}')")
        if _differs(path, _wanted(path, rel, url), text):
            found.append(f"{rel}: badges or install URL out of date "
                         "(run python -m mmcourse badges)")
    return found


def sync(root: Path | None = None) -> list[Path]:
    """Rewrite every notebook's badge line and install URL from :func:`repository_url`;
    return the files that changed."""
    root = root or repository_root()
    url = repository_url(root)
    changed = []
    for path in notebook_files(root):
        text = path.read_text()
        wanted = _wanted(path, path.relative_to(root).as_posix(), url)
        if _differs(path, wanted, text):
            path.write_text(wanted)
            changed.append(path)
    return changed
