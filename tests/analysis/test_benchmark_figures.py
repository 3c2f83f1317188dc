"""The benchmark's figures draw exactly their tables' numbers: a panel per workload (or per
measure), a line or point set per optimizer in its report-wide colour, and a PNG on disk."""
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from optsweep.analysis.benchmark_figures import (
    budget_figure,
    draw_budget,
    draw_lr,
    draw_profile,
    lr_figure,
    profile_figure,
)
from optsweep.analysis.budget import budget_curves
from optsweep.analysis.profile import TAU_MAX, performance_profile
from optsweep.analysis.style import optimizer_colour

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRIALS = pd.DataFrame({"workload": ["w1"] * 4 + ["w2"] * 2,
                       "optimizer": ["adam", "adam", "sgd", "sgd", "adam", "sgd"],
                       "trial": [0, 1, 0, 1, 0, 0], "value": [0.2, 0.6, 0.4, 0.1, 0.9, 0.3],
                       "lr": [1e-3, 1e-2, 1e-1, 0.0, 3e-4, 3e-2]})


def drawn(ax, optimizer: str, linestyle: str = "-"):
    """The line seaborn drew for `optimizer` in its report-wide colour (and `linestyle`)."""
    return next(line for line in ax.lines if line.get_linestyle() == linestyle
                and to_rgba(line.get_color()) == to_rgba(optimizer_colour(optimizer)))


def test_budget_curves_are_drawn_per_workload_solid_unbiased_expected_dotted_so_far():
    curves = budget_curves(TRIALS, "val_acc1")
    fig = draw_budget(curves)
    w1, w2 = fig.axes
    assert (w1.get_title(), w2.get_title()) == ("w1", "w2")
    expected, so_far = drawn(w1, "adam"), drawn(w1, "adam", ":")  # adam in w1: 0.2 then 0.6
    assert list(expected.get_xdata()) == [1, 2] and list(so_far.get_ydata()) == [0.2, 0.6]
    # the one pair of two trials (0.2, 0.6) has best 0.6 (Dodge's with replacement: 0.5)
    assert expected.get_ydata()[1] == pytest.approx(0.6)
    for (workload, optimizer), rows in curves.groupby(["workload", "optimizer"]):
        ax = w1 if workload == "w1" else w2
        for column, linestyle in (("expected_best", "-"), ("best_so_far", ":")):
            line = drawn(ax, optimizer, linestyle)
            assert list(line.get_ydata()) == pytest.approx(list(rows[column]))
    assert [t.get_text() for t in fig.legends[0].texts] == ["adam", "sgd"]


def test_the_expected_best_is_drawn_only_up_to_the_trials_that_gave_a_value():
    fig = draw_budget(budget_curves(TRIALS, "val_acc1", budget=4))
    expected = drawn(fig.axes[1], "adam")  # adam in w2: one trial, budget 4
    assert list(expected.get_xdata()) == [1] and list(expected.get_ydata()) == [0.9]


def test_the_budget_band_is_drawn_where_the_table_has_one():
    ten = pd.DataFrame({"workload": "w1", "optimizer": "adam", "trial": range(10),
                        "value": [0.1, 0.5, 0.3, 0.9, 0.2, 0.6, 0.4, 0.8, 0.7, 0.35], "lr": 1e-3})
    curves = budget_curves(ten, "val_acc1")
    banded = curves[curves["band_low"].notna()]
    assert list(banded["k"]) == [1, 2]  # k <= N / 5
    (band,) = draw_budget(curves).axes[0].collections
    vertices = band.get_paths()[0].vertices
    assert vertices[:, 1].min() == pytest.approx(banded["band_low"].min())
    assert vertices[:, 1].max() == pytest.approx(banded["band_high"].max())
    assert set(vertices[:, 0]) == {1.0, 2.0}
    assert to_rgba(band.get_facecolor()[0])[:3] == to_rgba(optimizer_colour("adam"))[:3]


def test_lr_sensitivity_shows_each_trial_with_a_positive_lr_on_a_log_axis():
    positive = TRIALS[TRIALS["lr"] > 0]
    fig = draw_lr(positive, "val_acc1")
    w1 = fig.axes[0]
    assert w1.get_xscale() == "log"
    (points,) = [c for c in w1.collections if len(c.get_offsets())]
    offsets, colours = points.get_offsets().tolist(), points.get_facecolors()
    drawn_points = {(x, y, to_rgba(colour)) for (x, y), colour in zip(offsets, colours)}
    assert drawn_points == {(1e-3, 0.2, to_rgba(optimizer_colour("adam"))),
                            (1e-2, 0.6, to_rgba(optimizer_colour("adam"))),
                            (1e-1, 0.4, to_rgba(optimizer_colour("sgd")))}


def test_profiles_step_through_the_fraction_of_workloads_within_tau():
    times = pd.DataFrame({"workload": ["w1", "w1", "w2", "w2"],
                          "optimizer": ["adam", "sgd", "adam", "sgd"],
                          "epochs": [2.0, 4.0, 3.0, 3.0], "seconds": [10.0, 5.0, 8.0, np.inf]})
    table, _ = performance_profile(times)
    fig = draw_profile(table)
    epochs, seconds = fig.axes
    adam, sgd = drawn(epochs, "adam"), drawn(epochs, "sgd")
    taus = adam.get_xdata()
    assert taus[0] == 1.0 and taus[-1] == TAU_MAX
    # epochs: adam is fastest on both (rho = 1 from tau 1); sgd is 2x on w1, tied on w2
    assert set(adam.get_ydata()) == {1.0}
    assert sgd.get_ydata()[0] == 0.5 and sgd.get_ydata()[-1] == 1.0
    # seconds: sgd never reaches the target on w2, so it stays at 1/2
    assert set(drawn(seconds, "sgd").get_ydata()) == {0.5}


def test_each_figure_is_a_png_and_nothing_to_draw_is_no_file(tmp_path):
    curves = budget_curves(TRIALS, "val_acc1")
    table, _ = performance_profile(pd.DataFrame({"workload": ["w1"], "optimizer": ["adam"],
                                                 "epochs": [1.0], "seconds": [2.0]}))
    written = [budget_figure(curves, tmp_path / "a" / "budget.png"),
               profile_figure(table, tmp_path / "profile.png"),
               lr_figure(TRIALS, "val_acc1", tmp_path / "lr.png")]
    assert all(path.read_bytes()[:8] == PNG_MAGIC for path in written)
    assert budget_figure(curves.iloc[:0], tmp_path / "none.png") is None
    assert lr_figure(TRIALS.assign(lr=np.nan), "val_acc1", tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
