"""Interactive views: a still picture beside every live widget; the stamp browser's
message when a language has no recording."""
from types import SimpleNamespace

import ipywidgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mmcourse.display import widgets  # noqa: E402


def _draw(level):
    """Draw a figure and display it as PNG, as the inline backend of a kernel does."""
    import io

    from IPython.display import Image, display

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, level])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    display(Image(data=buffer.getvalue()))


def test_a_still_is_the_png_of_the_default_view():
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance()  # display() formats figures as PNG, as in a kernel
    png = widgets.still_of(_draw, {"level": 3})
    assert png is not None
    import base64

    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    assert widgets.still_of(lambda level: print(level), {"level": 1}) is None


def test_an_interactive_view_offers_the_widget_and_the_still():
    slider = ipywidgets.IntSlider(value=2, min=0, max=5)
    view = widgets.InteractiveView(ipywidgets.interactive(lambda level: None, level=slider),
                                   "iVBORw0KGgo=")
    bundle = view._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["image/png"] == "iVBORw0KGgo="
    assert "interactive(children" not in data["text/plain"]


def test_without_a_front_end_the_default_view_is_rendered_once(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    seen = []
    widgets.show_interactive(lambda level: seen.append(level),
                             level=ipywidgets.IntSlider(value=4))
    assert seen == [4]
    assert "static view" in capsys.readouterr().out


def _stamp(category, *languages):
    return SimpleNamespace(category=category, spoken={lang: None for lang in languages})


def test_the_browser_says_why_no_player_is_shown():
    stamps = [_stamp("animals", "fr", "en"), _stamp("animals", "fr"), _stamp("food", "fr")]
    text = widgets.no_recording_message(stamps, "food", "en")
    assert "'en'" in text and "none of the food stamps" in text and "1 of the 3" in text
    text = widgets.no_recording_message(stamps, "animals", "en")
    assert "1 stamps of animals have one" in text
