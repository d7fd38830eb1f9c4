"""The course's figure style and the MFCC heat map."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mmcourse.display import plots  # noqa: E402


def test_the_course_style_draws_at_100_dpi_with_no_text_below_8_pt():
    plots.use_course_style()
    assert plt.rcParams["figure.dpi"] >= 100 and plt.rcParams["savefig.dpi"] >= 100
    for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize",
                "ytick.labelsize", "legend.fontsize"):
        size = plt.rcParams[key]
        points = size if isinstance(size, (int, float)) else \
            matplotlib.font_manager.FontProperties(size=size).get_size_in_points()
        assert points >= 8, f"{key} is {points} pt"


def test_standardised_rows_have_zero_mean_and_unit_spread():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(13, 40)) * np.arange(1, 14)[:, None] + 100
    out = plots.standardize_rows(values)
    assert np.allclose(out.mean(axis=1), 0) and np.allclose(out.std(axis=1), 1)
    assert np.isfinite(plots.standardize_rows(np.ones((2, 5)))).all(), "constant rows stay finite"


def test_coefficient_0_no_longer_flattens_the_mfcc_map():
    rng = np.random.default_rng(0)
    mfcc = rng.normal(size=(50, 13))
    mfcc[:, 0] = mfcc[:, 0] * 50 - 300          # c0: log energy, a far larger range
    _, ax = plt.subplots()
    plots.plot_mfcc(mfcc, ax=ax)
    shown = ax.images[0].get_array()
    assert abs(float(shown[1:].std()) - 1) < 0.1, "every other coefficient keeps its contrast"
    _, ax = plt.subplots()
    plots.plot_mfcc(mfcc, ax=ax, per_coefficient=False)
    raw = ax.images[0].get_array()
    assert float(raw[1:].std()) < 0.05 * float(raw.max() - raw.min())
    plt.close("all")
