"""Figures: the drawn lines equal groupby().mean() of the tidy data; every file is a PNG."""
import matplotlib.colors
import numpy as np
import pytest

from optsweep.analysis import load_runs
from optsweep.analysis.figures import final_metrics, t_interval, training_curves, write_figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def line_by_label(ax, grid):
    """{legend label: Line2D} for one panel, matched by colour."""
    legend = grid.figure.legends[0]
    handles = dict(zip((t.get_text() for t in legend.texts), legend.legend_handles))
    handles = {label: h for label, h in handles.items() if h.get_linestyle() != "None"}
    drawn = [line for line in ax.lines if len(line.get_xdata())]  # seaborn adds empty legend proxies
    lines = {}
    for label, handle in handles.items():
        for line in drawn:
            if np.allclose(matplotlib.colors.to_rgb(line.get_color()),
                           matplotlib.colors.to_rgb(handle.get_color())):
                lines[label] = line
    return lines


def test_training_curves_draw_the_mean_over_seeds(lr_sweep):
    runset = load_runs([lr_sweep])
    grid = training_curves(runset, "adam_lr")
    metrics = runset.metrics
    for (_, metric), ax in zip([(None, m) for m in grid.col_names], grid.axes.flat):
        expected = (metrics[metrics["metric"] == metric]
                    .groupby(["setting", "epoch"])["value"].mean())
        lines = line_by_label(ax, grid)
        assert set(lines) == {"lr=0.0001 (n=3)", "lr=0.001 (n=3)", "lr=0.01 (n=3)"}
        for label, line in lines.items():
            setting = label.split(" (n=")[0]
            x, y = line.get_xydata().T
            assert list(x) == [1, 2, 3]
            assert y == pytest.approx(expected.loc[setting].to_numpy())
    assert "n=3" in grid.figure._suptitle.get_text()


def test_final_metrics_draw_the_mean_against_the_swept_value_on_a_log_axis(messy_sweep):
    runset = load_runs([messy_sweep])
    grid = final_metrics(runset, "adam_lr")
    runs = runset.runs[runset.runs["status"].isin(["completed", "diverged"])]
    assert grid.col_names == ["val_acc1", "val_acc5", "test_acc1", "test_acc5"]
    for metric, ax in zip(grid.col_names, grid.axes.flat):
        expected = runs.groupby("optimizer.lr")[f"final_{metric}"].mean()
        x, y = ax.lines[0].get_xydata().T
        assert x == pytest.approx(expected.index.to_numpy())
        assert y == pytest.approx(expected.to_numpy())
        assert ax.get_xscale() == "log"
    # the interrupted run (lr 1e-3, seed 3) is not averaged but drawn as a marker at its value
    interrupted = runset.runs.set_index("job").loc["10", "final_test_acc1"]
    ax = grid.axes.flat[2]
    points = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
    assert any(np.allclose(p, [1e-3, interrupted]) for p in points)
    assert "diverged: 1" in grid.figure._suptitle.get_text()


def test_optimizer_comparison_is_a_point_per_optimizer(optimizer_sweep):
    runset = load_runs([optimizer_sweep])
    grid = final_metrics(runset, "compare")
    ax = grid.axes.flat[grid.col_names.index("test_acc1")]
    expected = runset.runs.groupby("optimizer")["final_test_acc1"].mean()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["adam", "sgd"]
    assert ax.lines[0].get_ydata() == pytest.approx(expected.loc[["adam", "sgd"]].to_numpy())


def test_t_interval_by_hand():
    # mean 0.91, sd 0.01, n 3: half width = t(0.975, 2) * 0.01 / sqrt(3) = 4.3027 * 0.005774
    low, high = t_interval([0.90, 0.91, 0.92])
    assert (high - low) / 2 == pytest.approx(4.302653 * 0.01 / 3 ** 0.5, rel=1e-5)
    assert t_interval([0.5]) == (0.5, 0.5)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_figure_is_written_as_png(lr_sweep, optimizer_sweep, tmp_path, workers):
    runset = load_runs([lr_sweep, optimizer_sweep])
    written = write_figures(runset, tmp_path / "figures", workers=workers)
    assert set(written) == {"adam_lr", "compare"}
    paths = [p for ps in written.values() for p in ps]
    assert len(paths) == 4
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC
