"""How the course's files become web pages (book/conf.py loads this extension).

What the notebooks need on a static site, where no kernel runs:

- Saved widgets are shown from their saved state. A notebook saves each widget's last
  state in its metadata; a training progress bar becomes the text tqdm prints, and an
  interactive view becomes its controls' values followed by what its output area
  showed (figures, printed text, audio players). A widget with no saved state keeps its
  still picture or its text.
- Printed text next to printed text reads as one block, as in JupyterLab.
- Each figure gets a text alternative naming the section it belongs to, unless its cell
  gives one (cell metadata ``mystnb: {image: {alt: …}}``).
- The Colab and Binder badges at the top of each notebook are left out: the theme's
  launch buttons, on every notebook page, do the same without loading badge pictures
  from the network.

And for the whole site:

- A link to a file of the repository that is not a page of the book goes to that file
  in the repository; a link to a file that does not exist is left for Sphinx to report.
- MathJax, from the npm package ``mathjax``, is copied into the build so that equations
  render without a network.
"""
from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.errors import ExtensionError
from sphinx.transforms.post_transforms import SphinxPostTransform

ROOT = Path(__file__).resolve().parents[2]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
STILL_NOTE = "(interactive view: open the notebook in JupyterLab or Colab to use the controls)"
# A line made only of badges: [![alt](https://…picture)](https://…target), repeated.
BADGE = r"\[!\[[^\]]*\]\(https?://[^)\s]+\)\]\(https?://[^)\s]+\)"
BADGE_LINE = re.compile(rf"^[ \t]*{BADGE}(?:[ \t]+{BADGE})*[ \t]*\n?", re.MULTILINE)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+)$", re.MULTILINE)
# What the site needs of MathJax 3 (es5 build): the TeX-to-HTML component, its fonts,
# the TeX extensions it loads on demand, and the accessibility parts its menu offers.
MATHJAX_PARTS = ("tex-chtml.js", "input/tex", "output/chtml", "a11y", "ui", "sre")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def _child(state: dict, ref: str) -> dict | None:
    return state.get(ref.removeprefix("IPY_MODEL_"))


def _progress_text(state: dict, box: dict) -> str | None:
    """The text tqdm prints for a saved progress bar (an HBox of HTML, a progress bar
    and HTML), e.g. ``run 1/15: 100%|██████████| 430/430 [04:08<00:00, 2.00it/s]``."""
    parts = [_child(state, ref) for ref in box["state"].get("children", [])]
    if len(parts) != 3 or any(p is None for p in parts):
        return None
    left, bar, right = parts
    if (left["model_name"], right["model_name"]) != ("HTMLModel", "HTMLModel") or \
            bar["model_name"] not in ("FloatProgressModel", "IntProgressModel"):
        return None
    total = bar["state"].get("max") or 0
    filled = round(10 * bar["state"].get("value", 0) / total) if total else 0

    def plain(model):
        return html.unescape(model["state"].get("value", "")).replace("\u2007", " ")

    return f"{plain(left)}|{'█' * filled}{' ' * (10 - filled)}|{plain(right)}\n"


def _control_value(model: dict):
    """The value a saved control shows: a dropdown's chosen label, a slider's number,
    a text box's text."""
    values = model["state"]
    labels = values.get("_options_labels")
    if labels is not None and values.get("index") is not None:
        return labels[values["index"]]
    value = values.get("value")
    return round(value, 3) if isinstance(value, float) else value


def _interactive_outputs(state: dict, box: dict) -> list[dict] | None:
    """A saved interactive view (a box of controls and an output area) as outputs: one
    line naming each control's value, then what the output area showed."""
    children = [_child(state, ref) for ref in box["state"].get("children", [])]
    areas = [c for c in children if c and c["model_name"] == "OutputModel"]
    if not areas:
        return None
    controls = [c for c in children if c and "description" in c["state"]
                and c["model_name"] != "OutputModel"]
    shown = ", ".join(f"{c['state']['description']} = {_control_value(c)!r}"
                      for c in controls)
    outputs = [_stream(f"{STILL_NOTE}\n{shown}\n" if shown else f"{STILL_NOTE}\n")]
    for area in areas:
        outputs.extend(area["state"].get("outputs", []))
    return outputs


def static_widget_outputs(output: dict, state: dict) -> list[dict]:
    """The outputs that stand for one widget output on a static page."""
    data = output.get("data", {})
    model = state.get(data[WIDGET_VIEW].get("model_id", ""))
    if model is not None:
        progress = _progress_text(state, model)
        if progress is not None:
            return [_stream(progress)]
        shown = _interactive_outputs(state, model)
        if shown is not None:
            return shown
    still = {key: value for key, value in data.items() if key != WIDGET_VIEW}
    return [dict(output, data=still)] if still else []


def _join_printed_lines(outputs: list[dict]) -> list[dict]:
    """Outputs with each run of printed text (a progress bar's line, then a log line…)
    as one block, as JupyterLab shows it; the order of everything else is kept."""
    joined: list[dict] = []
    for output in outputs:
        last = joined[-1] if joined else {}
        if output.get("output_type") == "stream" and last.get("output_type") == "stream" \
                and last.get("name") == output.get("name"):
            joined[-1] = dict(last, text=_text(last["text"]) + _text(output["text"]))
        else:
            joined.append(output)
    return joined


def _describe_figures(cell: dict, section: str) -> None:
    """Give a cell's figures a text alternative that says where they come from, unless
    the cell names one itself (cell metadata ``mystnb: {image: {alt: …}}``)."""
    shown = any(key.startswith("image/") for output in cell.get("outputs", [])
                for key in output.get("data", {}))
    options = cell.setdefault("metadata", {}).setdefault("mystnb", {}).setdefault("image", {})
    if shown and "alt" not in options:
        where = f" in the section “{section}”" if section else ""
        options["alt"] = f"Figure drawn by the code cell above{where}"


def notebook_for_the_web(source: str) -> str:
    """A notebook's JSON text with its widgets replaced by their saved state, its
    launch badges removed and a text alternative for each figure (module docstring)."""
    notebook = json.loads(source)
    state = (notebook.get("metadata", {}).pop("widgets", {})
             .get(WIDGET_STATE, {}).get("state", {}))
    section = ""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            text = BADGE_LINE.sub("", _text(cell.get("source", "")), count=1)
            cell["source"] = text.lstrip("\n")
            headings = HEADING.findall(text)
            section = headings[-1].strip() if headings else section
        outputs = []
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                outputs.extend(static_widget_outputs(output, state))
            else:
                outputs.append(output)
        if "outputs" in cell:
            cell["outputs"] = _join_printed_lines(outputs)
            _describe_figures(cell, section)
    return json.dumps(notebook)


def _on_source_read(app, docname: str, content: list[str]) -> None:
    if app.env.doc2path(docname).suffix == ".ipynb":
        content[0] = notebook_for_the_web(content[0])


def repository_file(relative_to: Path, target: str) -> Path | None:
    """The repository file a link names: relative to the page's folder, else (links in
    the parts of README.md that pages include) to the repository's root."""
    target = target.split("#", 1)[0]
    for base in (relative_to, ROOT):
        path = (base / target).resolve()
        if path.is_file() and path.is_relative_to(ROOT):
            return path
    return None


class RepositoryLinks(SphinxPostTransform):
    """A link to a repository file that is not a page of the book becomes a link to
    that file in the repository (runs before MyST resolves its links, priority 9)."""

    default_priority = 8

    def run(self, **kwargs) -> None:
        env = self.env
        blob = env.config.course_repository_blob
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst":
                continue
            target = node["reftarget"]
            if node.get("refdomain") == "doc":
                if target in env.found_docs:
                    continue
                candidates = [f"{target}{suffix}" for suffix in (".md", ".ipynb", "")]
            elif node.get("refdomain"):
                continue
            else:
                candidates = [target]
            folder = env.doc2path(node.get("refdoc", env.docname)).parent
            found = next((p for p in map(lambda c: repository_file(folder, c), candidates)
                          if p is not None), None)
            if found is None:
                continue
            link = nodes.reference("", "", internal=False,
                                   refuri=f"{blob}/{found.relative_to(ROOT).as_posix()}")
            link += node.children
            node.replace_self(link)


def _copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source = ROOT / "node_modules" / "mathjax" / "es5"
    if not (source / "tex-chtml.js").is_file():
        raise ExtensionError(
            f"MathJax is missing from {source}: run `npm ci` in the repository "
            "(make book does) to install the versions package-lock.json pins")
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, target / part)


def setup(app):
    app.add_config_value("course_repository_blob", "", "env")
    app.connect("source-read", _on_source_read)
    app.connect("build-finished", _copy_mathjax)
    app.add_post_transform(RepositoryLinks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
