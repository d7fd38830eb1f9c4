"""Interactive front ends (ipywidgets) that fall back to static output without one.

In JupyterLab or Colab the widgets are live. Under CI, nbval or a plain script
(``CI`` set, or no IPython kernel), each function renders its default choice statically
instead, so the notebook still shows something meaningful.
"""
from __future__ import annotations

import os

import matplotlib.pyplot as plt

from mmcourse.data import load_image

from .plots import show_images


def interactive_frontend() -> bool:
    """True when running in an IPython kernel outside CI, where widgets can be shown."""
    if os.environ.get("CI") or os.environ.get("MMCOURSE_STATIC_WIDGETS"):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class InteractiveView:
    """A live widget that also carries a still picture of its default view.

    Displayed, it offers the front end both the widget and a PNG: JupyterLab and Colab
    show the live controls, while a page that cannot run widgets (GitHub, nbviewer, an
    untrusted notebook) shows the picture instead of the widget's raw text.
    """

    def __init__(self, widget, still_png: str | None):
        self.widget = widget
        self.still_png = still_png

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if self.still_png:
            data["image/png"] = self.still_png
        data["text/plain"] = ("(interactive view: run the notebook in JupyterLab or Colab "
                              "to use the controls)")
        return bundle


def still_of(render, values: dict) -> str | None:
    """``render(**values)`` with its output captured; the first figure it drew, as
    base64 PNG (None when it drew none)."""
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        render(**values)
    for output in captured.outputs:
        if "image/png" in output.data:
            return output.data["image/png"]
    return None


def show_interactive(render, **controls):
    """Call ``render(**values)`` under ipywidgets ``interactive`` with the given
    ``controls``.

    ``controls`` maps an argument name to a widget (Dropdown, slider, …). With a front
    end, the result is an :class:`InteractiveView`: the live widget plus a still of its
    default view for pages that cannot run widgets. Without one, ``render`` is called
    once with each control's current value and its output is shown as is.
    """
    values = {name: widget.value for name, widget in controls.items()}
    if interactive_frontend():
        import ipywidgets

        return InteractiveView(ipywidgets.interactive(render, **controls),
                               still_of(render, values))
    print("(static view: open the notebook in JupyterLab or Colab to use the controls)")
    return render(**values)


def no_recording_message(stamps, category: str, language: str) -> str:
    """Why no audio player is shown: how many stamps of ``category`` (and of the whole
    collection) have a spoken caption in ``language``."""
    in_category = sum(language in s.spoken for s in stamps if s.category == category)
    overall = sum(language in s.spoken for s in stamps)
    where = (f"{in_category} stamps of {category} have one, on other pages" if in_category
             else f"none of the {category} stamps has one")
    return (f"No spoken caption in {language!r} for the stamps on this page: {where}; "
            f"{overall} of the {len(stamps)} stamps have one in {language!r}. "
            "Pick another language (fr, ru, ro, ca, bg and es have the most).")


def stamp_browser(stamps, per_page: int = 6, language: str = "fr"):
    """Browse stamps by category: pictures with captions and the spoken captions.

    A category dropdown, a caption-language dropdown and a page slider; under the grid,
    an audio player for each shown stamp that has a spoken caption in that language.
    """
    import ipywidgets as w
    from IPython.display import Audio, display


    languages = sorted({lang for s in stamps for lang in s.spoken})
    largest = max(len(stamps.by_category(c)) for c in stamps.categories())
    default_category = "animals" if "animals" in stamps.categories() else stamps.categories()[0]

    def render(category, language, page):
        chosen = [s for s in stamps if s.category == category]
        chosen = chosen[page * per_page:(page + 1) * per_page]
        if not chosen:
            print(f"{category} has no stamps on page {page}.")
            return
        captions = [s.captions.get(language, s.caption) for s in chosen]
        show_images([load_image(s).resize((160, 160)) for s in chosen], captions,
                    ncols=per_page)
        plt.show()
        spoken = [stamp for stamp in chosen if language in stamp.spoken]
        for stamp in spoken:
            print(f"{stamp.name} ({language}):")
            display(Audio(filename=str(stamp.spoken_path(language))))
        if not spoken:
            print(no_recording_message(stamps, category, language))

    return show_interactive(
        render,
        category=w.Dropdown(options=stamps.categories(), value=default_category,
                            description="category"),
        language=w.Dropdown(options=languages, value=language, description="language"),
        page=w.IntSlider(min=0, max=(largest - 1) // per_page, value=0, description="page"))
