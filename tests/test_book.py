"""The course's website, checked in a real browser.

Run with ``make book-check`` (CI does, after ``make book``): these tests carry the
``book`` mark and run only when ``-m book`` selects them (tests/conftest.py). If
``_build/html`` is missing or older than a file it is made from, the first test builds
it with ``make book``. Every page is then opened from disk in headless Chromium by
``tests/book_browser.mjs`` (puppeteer-core and axe-core from node_modules, Debian's
chromium; ``CHROMIUM`` names another), with every request that would leave the disk
refused, and the report it writes is checked here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
CHAPTERS = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
EXERCISES = sorted(path.stem for path in (ROOT / "exercises").glob("[0-9]*.ipynb"))
PAGES = (["book/index", "book/exercises", "book/instructors", "docs/post", "docs/glossary",
          "search", "genindex"]
         + [f"notebooks/{name}" for name in CHAPTERS]
         + [f"exercises/{name}" for name in EXERCISES])
# A search term and pages its results must include.
SEARCHES = {
    "CTC": ["notebooks/08_speech_recognition.html"],
    "微调": ["docs/glossary.html", "notebooks/06_finetune.html"],
}
SERIOUS = {"serious", "critical"}


def sources() -> list[Path]:
    """The files the site is made from."""
    found = [ROOT / "README.md", ROOT / "pyproject.toml", ROOT / "package-lock.json",
             *(ROOT / "notebooks").glob("[0-9]*.ipynb"),
             *(ROOT / "exercises").glob("[0-9]*.ipynb"),
             *(ROOT / "docs").glob("*.md"), *ROOT.glob("LICENSE*"), ROOT / "CITATION.cff"]
    found += [path for path in (ROOT / "book").rglob("*") if path.is_file()
              and "__pycache__" not in path.parts]
    return [path for path in found if path.is_file()]


def site_is_current() -> bool:
    built = SITE / "searchindex.js"  # written last of the pages
    return built.is_file() and all(
        path.stat().st_mtime <= built.stat().st_mtime for path in sources())


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(chromium).is_file(), (
        f"no Chromium at {chromium}: apt-get install chromium (or set CHROMIUM)")
    assert (ROOT / "node_modules" / "puppeteer-core").is_dir(), (
        "puppeteer-core and axe-core are missing: run `npm ci` in the repository")
    if not site_is_current():
        subprocess.run(["make", "book"], cwd=ROOT, check=True)
    path = tmp_path_factory.mktemp("book") / "report.json"
    command = ["node", "tests/book_browser.mjs", str(SITE), str(path), "--chromium", chromium]
    for term in SEARCHES:
        command += ["--search", term]
    subprocess.run(command, cwd=ROOT, check=True, timeout=900)
    return json.loads(path.read_text())


@pytest.fixture
def pages(report) -> dict:
    return {name.removesuffix(".html"): seen for name, seen in report["pages"].items()}


def test_every_page_was_opened(pages):
    assert sorted(set(PAGES) - set(pages)) == []
    assert pages["index"] == {"redirects_to": "book/index.html"}


def test_nothing_is_fetched_from_the_network(report):
    assert report["refused"] == []


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_without_script_errors(pages, page):
    assert pages[page]["errors"] == []
    assert pages[page]["lang"] == "en"


@pytest.mark.parametrize("page", PAGES)
def test_equations_are_typeset(pages, page):
    seen = pages[page]
    assert seen["mathjax_loaded"] or not seen["math_sources"]
    assert seen["math_rendered"] >= seen["math_sources"], "equations MathJax left alone"
    assert seen["math_errors"] == 0, "TeX that MathJax could not read"
    assert seen["raw_tex"] == [], "TeX shown as text"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_shows_its_equations(pages, chapter):
    assert pages[f"notebooks/{chapter}"]["math_rendered"] > 0


@pytest.mark.parametrize("page", PAGES)
def test_figures_load_and_say_what_they_are(pages, page):
    for image in pages[page]["images"]:
        assert image["width"] > 0 and image["height"] > 0, f"{image['src']} did not load"
        alt = image["alt"] or ""
        assert alt and not alt.endswith((".png", ".svg", ".jpg")), (
            f"{image['src']}: its text alternative is {alt!r}")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_shows_its_figures(pages, chapter):
    assert pages[f"notebooks/{chapter}"]["images"], "no figure on the page"


@pytest.mark.parametrize("chapter", ["00_setup_and_data", "03_crnn"])
def test_audio_players_carry_their_recordings(pages, chapter):
    players = pages[f"notebooks/{chapter}"]["audio"]
    assert players and all(player["playable"] for player in players)


@pytest.mark.parametrize("page", PAGES)
def test_no_widget_is_left_for_a_script_to_draw(pages, page):
    assert pages[page]["widget_scripts"] == 0


@pytest.mark.parametrize("page", [page for page in PAGES
                                  if page.startswith(("notebooks/", "exercises/"))])
def test_notebook_pages_offer_launch_and_download(pages, page):
    seen, target = pages[page], f"{page}.ipynb"
    assert any("colab.research.google.com" in link and link.endswith(target)
               for link in seen["launch_links"])
    assert any("mybinder.org" in link and target in link for link in seen["launch_links"])
    assert any(link.endswith(Path(target).name) for link in seen["download_links"])


@pytest.mark.parametrize("page", PAGES)
def test_footer_names_the_licences(pages, page):
    footer = pages[page]["footer"]
    assert "MIT" in footer and "CC BY 4.0" in footer and "CITATION.cff" in footer


@pytest.mark.parametrize("page", PAGES)
def test_links_within_the_site_lead_somewhere(pages, page):
    assert pages[page]["broken_links"] == []


@pytest.mark.parametrize("term", SEARCHES)
def test_search_finds(report, term):
    found = report["search"][term]
    assert set(SEARCHES[term]) <= set(found["results"]), found["results"]
    # Opened from disk, the search page cannot fetch a result's summary; the results
    # themselves are complete.
    assert [error for error in found["errors"] if "Failed to fetch" not in error] == []


@pytest.mark.parametrize("page", PAGES)
def test_no_serious_accessibility_violation(pages, page):
    serious = [f"{v['id']} ({v['impact']}): {v['help']} at {v['targets']}"
               for v in pages[page]["axe"] if v["impact"] in SERIOUS]
    assert serious == []


def test_widgets_become_their_saved_state():
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from course_pages import WIDGET_VIEW, notebook_for_the_web

    page = json.loads(notebook_for_the_web((ROOT / "notebooks" / "01_cnn.ipynb").read_text()))
    outputs = [output for cell in page["cells"] for output in cell.get("outputs", [])]
    assert not any(WIDGET_VIEW in output.get("data", {}) for output in outputs)
    assert "widgets" not in page["metadata"]
    streams = "".join("".join(output["text"]) for output in outputs
                      if output["output_type"] == "stream")
    assert "fashion-cnn 1/15: 100%|██████████| 430/430" in streams
    assert "(interactive view: open the notebook in JupyterLab or Colab" in streams
    first = "".join(page["cells"][0]["source"])
    assert "colab-badge.svg" not in first and first.startswith("# 01 ·")
