"""Figures: the drawn lines equal groupby().mean() of the tidy data; axes and legends read well;
nothing is drawn off the canvas; every file is a PNG."""
import matplotlib.colors
import numpy as np
import pytest
import seaborn as sns
from conftest import write_run

from optsweep.analysis import load_runs
from optsweep.analysis.figures import final_metrics, t_interval, training_curves, write_figures
from optsweep.analysis.style import optimizer_colour, sweep_looks

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COUNTED = ["completed", "diverged"]


def lines_by_label(ax):
    """{label: Line2D} of the lines that carry a legend label (means; not bands or run traces)."""
    return {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}


def assert_on_canvas(fig):
    """Everything drawn (titles, tick labels, legend) lies within the saved canvas."""
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    width, height = fig.get_size_inches()
    slack = 1 / fig.dpi
    assert box.x0 >= -slack and box.y0 >= -slack, box
    assert box.x1 <= width + slack and box.y1 <= height + slack, (box, width, height)


def panel(fig, title):
    return next(ax for ax in fig.axes if ax.get_title() == title)


def test_curves_show_train_and_validation_loss_and_top1_as_the_mean_over_seeds(messy_sweep):
    runset = load_runs([messy_sweep])
    fig = training_curves(runset, "adam_lr")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["train loss", "validation loss", "train top-1 accuracy",
                      "validation top-1 accuracy"]
    tidy = runset.metrics[runset.metrics["status"].isin(COUNTED)]
    for title, metric in zip(titles, ["train_loss", "val_loss", "train_acc1", "val_acc1"]):
        expected = tidy[tidy["metric"] == metric].groupby(["setting", "epoch"])["value"].mean()
        lines = lines_by_label(panel(fig, title))
        # the interrupted run (lr 1e-3, seed 3) is drawn on its own and not averaged: n stays 3
        assert set(lines) == {"lr=0.0001 (n=3)", "lr=0.001 (n=3; 1 unfinished)",
                              "lr=0.01 (n=3)", "lr=0.1 (n=1)"}
        for label, line in lines.items():
            x, y = line.get_xydata().T
            setting = label.split(" (")[0]
            assert list(x) == list(expected.loc[setting].index)
            assert y == pytest.approx(expected.loc[setting].to_numpy())


def test_curves_fall_back_to_test_where_there_is_no_validation_split(tmp_path):
    for num, lr in enumerate((1e-3, 1e-2)):
        write_run(tmp_path / "noval" / str(num), lr=lr, val=False, num=num)
    fig = training_curves(load_runs([tmp_path / "noval"]), "noval")
    assert [ax.get_title() for ax in fig.axes][:2] == ["train loss", "test loss"]


def test_epoch_ticks_are_whole_numbers(lr_sweep):
    fig = training_curves(load_runs([lr_sweep]), "adam_lr")
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)


def test_swept_values_have_three_significant_digits_and_pruned_settings_no_count(tmp_path):
    sweep = tmp_path / "search"
    write_run(sweep / "0", lr=2.01945e-05, num=0, acc=0.5)
    write_run(sweep / "1", lr=0.000123456, num=1, acc=0.6)
    write_run(sweep / "2", lr=0.0456789, num=2, acc=0.4, status="pruned", epochs=2)
    runset = load_runs([sweep])
    labels = [look.label for look in sweep_looks(runset.runs, runset.swept["search"]).values()]
    assert labels == ["lr=2.02e-05 (n=1)", "lr=0.000123 (n=1)", "lr=0.0457 (pruned)"]
    fig = training_curves(runset, "search")
    legend = [t.get_text() for t in fig.legends[0].texts]
    assert legend == [*labels, "pruned"]
    assert not any("n=0" in text for text in legend)


def test_final_values_against_lr_on_a_log_axis(messy_sweep):
    runset = load_runs([messy_sweep])
    fig = final_metrics(runset, "adam_lr")
    runs = runset.runs[runset.runs["status"].isin(COUNTED)]
    for title, metric in (("final validation top-1 accuracy", "val_acc1"),
                          ("final test top-1 accuracy", "test_acc1")):
        ax = panel(fig, title)
        expected = runs.groupby("optimizer.lr")[f"final_{metric}"].mean()
        x, y = lines_by_label(ax)["mean over seeds"].get_xydata().T
        assert x == pytest.approx(expected.index.to_numpy())
        assert y == pytest.approx(expected.to_numpy())
        assert ax.get_xscale() == "log"
    # the interrupted run (lr 1e-3, seed 3) is not averaged but marked at its last value
    interrupted = runset.runs.set_index("job").loc["10", "final_test_acc1"]
    ax = panel(fig, "final test top-1 accuracy")
    points = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
    assert any(np.allclose(p, [1e-3, interrupted]) for p in points)
    assert "diverged: 1" in fig._suptitle.get_text()


def lr_grid(tmp_path):
    """multirun/lr_grid: adam and rmsprop crossed with lr 1e-4, 1e-3, 1e-2, seeds 0-1."""
    sweep, num = tmp_path / "lr_grid", 0
    for optimizer in ("adam", "rmsprop"):
        for lr in (1e-4, 1e-3, 1e-2):
            for seed in range(2):
                write_run(sweep / str(num), optimizer=optimizer, lr=lr, seed=seed, num=num)
                num += 1
    return load_runs([sweep])


def test_lr_grid_is_one_line_per_optimizer_in_its_own_colour(tmp_path):
    runset = lr_grid(tmp_path)
    fig = final_metrics(runset, "lr_grid")
    ax = panel(fig, "final validation top-1 accuracy")
    assert ax.get_xscale() == "log"
    expected = runset.runs.groupby(["optimizer", "optimizer.lr"])["final_val_acc1"].mean()
    lines = lines_by_label(ax)
    assert set(lines) == {"adam", "rmsprop"}
    for optimizer, line in lines.items():
        x, y = line.get_xydata().T
        assert x == pytest.approx(expected.loc[optimizer].index.to_numpy())
        assert y == pytest.approx(expected.loc[optimizer].to_numpy())
        colour = matplotlib.colors.to_rgb(line.get_color())
        assert colour == pytest.approx(optimizer_colour(optimizer))


def test_lr_grid_curves_have_a_column_per_optimizer_and_the_lr_as_a_sequential_hue(tmp_path):
    runset = lr_grid(tmp_path)
    fig = training_curves(runset, "lr_grid")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["adam: train loss", "rmsprop: train loss"]
    assert len(fig.axes) == 8  # 2 optimizers x (train, validation) x (loss, top-1)
    tidy = runset.metrics[runset.metrics["metric"] == "train_loss"]
    expected = tidy.groupby(["optimizer", "optimizer.lr", "epoch"])["value"].mean()
    lrs = ("0.0001", "0.001", "0.01")
    for optimizer in ("adam", "rmsprop"):
        lines = lines_by_label(panel(fig, f"{optimizer}: train loss"))
        assert set(lines) == {f"{optimizer}, lr={lr} (n=2)" for lr in lrs}  # its own three only
        for lr in lrs:
            x, y = lines[f"{optimizer}, lr={lr} (n=2)"].get_xydata().T
            assert list(x) == [1, 2, 3]
            assert y == pytest.approx(expected.loc[(optimizer, float(lr))].to_numpy())
    looks = sweep_looks(runset.runs, runset.swept["lr_grid"])
    for lr in lrs:  # an lr has one colour in every optimizer's panel
        assert looks[f"adam, lr={lr}"].colour == looks[f"rmsprop, lr={lr}"].colour
    lightness = [sum(looks[f"adam, lr={lr}"].colour) for lr in lrs]
    assert lightness == sorted(lightness, reverse=True)  # light for the smallest lr, dark largest


def test_a_diverged_run_puts_the_loss_on_a_log_axis_said_on_its_label(lr_sweep):
    diverged = write_run(lr_sweep / "9", lr=1e-1, seed=0, status="diverged", epochs=2, num=9)
    header, *rows = (diverged / "metrics.csv").read_text().splitlines()
    cells = rows[1].split(",")
    cells[header.split(",").index("val_loss")] = "800000.0"  # epoch 2 blew up
    (diverged / "metrics.csv").write_text("\n".join([header, rows[0], ",".join(cells)]) + "\n")
    fig = training_curves(load_runs([lr_sweep]), "adam_lr")
    squashed = panel(fig, "validation loss")
    assert squashed.get_yscale() == "log"
    assert squashed.get_ylabel() == "loss, log axis (up to 8e+05)"
    assert list(lines_by_label(squashed)["lr=0.1 (n=1)"].get_ydata()) == [1.5, 800000.0]
    assert panel(fig, "train loss").get_yscale() == "linear"  # no run blew up there


def test_optimizer_comparison_is_a_point_per_optimizer_in_the_study_order(optimizer_sweep):
    runset = load_runs([optimizer_sweep])
    fig = final_metrics(runset, "compare")
    ax = panel(fig, "final test top-1 accuracy")
    expected = runset.runs.groupby("optimizer")["final_test_acc1"].mean()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["adam", "sgd"]
    lines = lines_by_label(ax)
    assert lines["adam (n=2)"].get_ydata() == pytest.approx([expected["adam"]])
    assert lines["sgd (n=2)"].get_ydata() == pytest.approx([expected["sgd"]])
    assert list(lines["sgd (n=2)"].get_xdata()) == [1]


def test_one_colour_per_setting_in_curves_and_final_values(lr_sweep):
    runset = load_runs([lr_sweep])
    looks = sweep_looks(runset.runs, runset.swept["adam_lr"])
    curves = lines_by_label(training_curves(runset, "adam_lr", looks).axes[0])
    final = final_metrics(runset, "adam_lr", looks).axes[0]
    dots = next(c for c in final.collections if len(c.get_offsets()) == 3)
    for k, look in enumerate(looks.values()):
        colour = matplotlib.colors.to_rgb(curves[look.label].get_color())
        assert colour == pytest.approx(look.colour)
        assert tuple(dots.get_facecolors()[k][:3]) == pytest.approx(look.colour)


@pytest.mark.parametrize("draw", [training_curves, final_metrics])
def test_nothing_is_clipped(messy_sweep, optimizer_sweep, draw, tmp_path):
    long_name = tmp_path / "a_sweep_with_a_rather_long_name_to_test_title_wrapping"
    for num, lr in enumerate((2.01945e-05, 3.3333e-4, 1e-2)):
        write_run(long_name / str(num), lr=lr, num=num, acc=0.5 + 0.1 * num)
    runset = load_runs([messy_sweep, optimizer_sweep, long_name])
    for sweep in runset.sweeps:
        assert_on_canvas(draw(runset, sweep))


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


def test_figures_take_the_seaborn_theme_in_force_when_drawn(lr_sweep):
    runset = load_runs([lr_sweep])
    with sns.axes_style("darkgrid"):
        themed = [training_curves(runset, "adam_lr"), final_metrics(runset, "adam_lr")]
    plain = training_curves(runset, "adam_lr")
    dark = matplotlib.colors.to_rgba(sns.axes_style("darkgrid")["axes.facecolor"])
    assert all(ax.get_facecolor() == dark for fig in themed for ax in fig.axes)
    assert all(ax.get_facecolor() != dark for ax in plain.axes)
