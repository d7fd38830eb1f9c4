"""Interactive front ends (ipywidgets) that fall back to static output without one.

In JupyterLab or Colab the widgets are live. Under CI, nbval or a plain script
(``CI`` set, or no IPython kernel), each function renders its default choice statically
instead, so the notebook still shows something meaningful.
"""
from __future__ import annotations

import os


def interactive_frontend() -> bool:
    """True when running in an IPython kernel outside CI, where widgets can be shown."""
    if os.environ.get("CI") or os.environ.get("MMCOURSE_STATIC_WIDGETS"):
        return False
    try:
        from IPython import get_ipython

        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def show_interactive(render, **controls):
    """Call ``render(**values)`` under ipywidgets ``interact`` with the given ``controls``.

    ``controls`` maps an argument name to a widget (Dropdown, slider, …). Without a front
    end, ``render`` is called once with each control's current value and its output is
    shown as is.
    """
    if interactive_frontend():
        import ipywidgets

        return ipywidgets.interactive(render, **controls)
    print("(static view: open the notebook in JupyterLab or Colab to use the controls)")
    return render(**{name: widget.value for name, widget in controls.items()})


def stamp_browser(stamps, per_page: int = 6, language: str = "fr"):
    """Browse stamps by category: pictures with captions and the spoken captions.

    A category dropdown, a caption-language dropdown and a page slider; under the grid,
    an audio player for each shown stamp that has a spoken caption in that language.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import Audio, display

    from .data import load_image
    from .plots import show_images

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
        for stamp in chosen:
            if language in stamp.spoken:
                print(f"{stamp.name} ({language}):")
                display(Audio(filename=str(stamp.spoken_path(language))))

    return show_interactive(
        render,
        category=w.Dropdown(options=stamps.categories(), value=default_category,
                            description="category"),
        language=w.Dropdown(options=languages, value=language, description="language"),
        page=w.IntSlider(min=0, max=(largest - 1) // per_page, value=0, description="page"))
