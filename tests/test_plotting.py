"""The report figures show what they claim: values, units, scales and colours."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from sklearn_llm_multilabel.plotting import (
    _reliability_bins,
    plot_label_alignment,
    plot_metric_bars,
    plot_reliability_comparison,
)


def test_metric_bars_colour_baselines_label_values_and_use_a_log_axis_over_decades():
    rows = {"constant prior": {"nll": 0.9, "l1": 0.4}, "max": {"nll": 3.3, "l1": 1.1},
            "hard": {"nll": 45.0, "l1": 2.4}}
    fig = plot_metric_bars(rows, metrics=("nll", "l1"), baselines=["constant prior"], title="t")
    nll, l1 = fig.axes
    assert nll.get_yscale() == "log" and l1.get_yscale() == "linear"
    colours = [bar.get_facecolor() for bar in nll.patches]
    assert colours[0] == to_rgba("0.6") and colours[1] == colours[2] == to_rgba("tab:blue")
    assert [t.get_text() for t in nll.texts] == ["0.9", "3.3", "45"]
    assert fig._suptitle.get_text() == "t"


def test_reliability_bins_count_and_average():
    y = np.array([0.0, 1.0, 1.0, 0.5])
    p = np.array([0.0, 0.05, 1.0, 0.95])
    xs, ys, counts = _reliability_bins(y, p, n_bins=10)
    np.testing.assert_allclose(xs, [0.025, 0.975])
    np.testing.assert_allclose(ys, [0.5, 0.75])
    assert counts.tolist() == [2, 2]


def test_reliability_comparison_has_one_line_per_method_and_checks_shapes():
    H = np.array([[1.0, 0.0], [0.5, 0.0]])
    fig = plot_reliability_comparison(H, {"max": H * 0.9, "hard": np.round(H)}, title="d, m")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["perfectly aligned", "max", "hard"]
    assert ax.get_xlim()[0] < 0 and ax.get_xlim()[1] > 1  # points at 0 and 1 stay visible
    assert ax.get_title() == "d, m"
    with pytest.raises(ValueError, match=r"probas\['max'\] has shape \(1, 2\)"):
        plot_reliability_comparison(H, {"max": H[:1]})


def test_label_alignment_bars_are_the_means():
    H = np.array([[1.0, 0.0], [0.5, 0.0]])
    first, best = np.array([[0.9, 0.9], [0.7, 0.9]]), np.array([[0.8, 0.2], [0.6, 0.0]])
    ax = plot_label_alignment(H, first, best, ["care", "purity"]).axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_allclose(heights, [0.8, 0.9, 0.7, 0.1, 0.75, 0.0])
    assert ax.get_ylim()[1] > 1
