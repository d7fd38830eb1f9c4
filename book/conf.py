"""The course as a website: Sphinx, MyST-NB and the book theme (`make book`).

The source folder is the repository's root, so pages keep the paths the notebooks
link to (``notebooks/01_cnn.ipynb``, ``docs/glossary.md``); ``include_patterns`` names
the files that are pages, ``book/index.md`` holds the table of contents. The notebooks
are shown with the outputs they were committed with: nothing is executed here.
"""
from __future__ import annotations

import logging
import sys
import tomllib
from pathlib import Path

import jieba

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
sys.path.insert(0, str(BOOK / "_ext"))

with open(ROOT / "pyproject.toml", "rb") as file:
    REPOSITORY = tomllib.load(file)["project"]["urls"]["Repository"].rstrip("/")
BRANCH = "main"

project = "mmcourse"
author = "The mmcourse authors"
copyright = "2026, The mmcourse authors"
language = "en"

root_doc = "book/index"
include_patterns = ["book/*.md", "notebooks/[0-9]*.ipynb", "exercises/[0-9]*.ipynb",
                    "docs/*.md"]
exclude_patterns = ["_build", ".venv", "node_modules", ".git", "**/.ipynb_checkpoints"]

extensions = ["myst_nb", "course_pages"]
course_repository_blob = f"{REPOSITORY}/blob/{BRANCH}"

# The committed notebooks are the pages; they are never run for the site.
nb_execution_mode = "off"
# Widgets are shown from their saved state (course_pages), so no widget script is loaded.
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath"]
# $$…$$ inside a paragraph or list item is display math, as Jupyter shows it.
myst_dmath_double_inline = True
myst_heading_anchors = 3
# Search: the Chinese splitter (jieba) indexes the Chinese terms (微调, 多模态大模型)
# as words; English words are stemmed as in English.
html_search_language = "zh"
jieba.setLogLevel(logging.WARNING)

# MathJax 3 is served with the pages (copied from node_modules by course_pages).
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_title = "mmcourse · multimodal deep learning"
templates_path = ["_templates"]
# Each page's notebook (or Markdown file) beside it, as committed, for the download button.
html_copy_source = True
html_sourcelink_suffix = ""
html_show_sourcelink = False
html_last_updated_fmt = None
# index.html, which opens the landing page, and the licences and citation file that
# every page's footer links to (_templates/licence.html).
html_extra_path = ["_root", "../LICENSE", "../LICENSE-CONTENT", "../CITATION.cff"]

html_theme_options = {
    "repository_url": REPOSITORY,
    "repository_branch": BRANCH,
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "home_page_in_toc": False,
    "show_navbar_depth": 1,
    # The search field once, in the sidebar: not again in a bar above the page.
    "navbar_persistent": [],
    "launch_buttons": {
        "colab_url": "https://colab.research.google.com",
        "binderhub_url": "https://mybinder.org",
        "notebook_interface": "jupyterlab",
    },
    "footer_content_items": ["author.html", "copyright.html", "licence.html"],
}
