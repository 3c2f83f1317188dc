"""Figures of a sweep: what an optimizer study is read for.

- `training_curves`: loss and top-1 against epoch for train and validation (test where a run has no
  validation split) side by side, so that overfitting shows as the gap between the two columns.
- `final_metrics`: final validation and test top-1 against the swept value. A numeric value (lr,
  weight_decay...) is an x axis (logarithmic for lr-like keys) with one line per optimizer, or per
  combination of the other swept keys; a categorical one (the optimizer comparison, `centered`)
  is a point per value.

Means over seeds carry a 95% Student-t interval: with the 2-5 seeds of a typical study a bootstrap
interval is too narrow and changes from run to run. Means are computed once, vectorised
(`mean_band`), into a tidy frame that a seaborn `FacetGrid` (`style.facet_grid`) draws a panel at
a time (`map_dataframe`): seaborn's own errorbar would bootstrap every point again. Every figure
function returns its Figure, whose mean lines carry their legend label (tests read them back).
Runs that stopped early (pruned, failed, interrupted) are drawn apart, never averaged and never
dropped silently.
"""
from __future__ import annotations

import multiprocessing
import re
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from optsweep.analysis.load import RunSet
from optsweep.analysis.style import (
    Look,
    crosses_optimizers,
    facet_grid,
    integer_ticks,
    optimizer_colour,
    optimizer_rank,
    outside_legend,
    save,
    setting_names,
    short_value,
    sweep_looks,
)
from optsweep.analysis.sweeps import (
    is_numeric_param,
    seed_range,
    setting_order,
    short_names,
    wants_log_axis,
)
from optsweep.analysis.tables import ci95_half
from optsweep.contract import AVERAGED, DEFAULT_REPORTED, DEFAULT_SELECT, Status
from optsweep.resources import available_cores

CURVE_MEASURES = ("loss", "acc1")
FINAL_METRICS = (DEFAULT_SELECT, DEFAULT_REPORTED)
MEASURE_NAMES = {"loss": "loss", "acc1": "top-1 accuracy", "acc5": "top-5 accuracy"}
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
# How runs that did not complete are drawn (they are never dropped silently).
STATUS_MARKERS = {Status.DIVERGED: "X", Status.INTERRUPTED: "D", Status.UNFINISHED: "d",
                  Status.PRUNED: "v", Status.FAILED: "s"}
STATUS_GLYPHS = {Status.DIVERGED: "✕", Status.INTERRUPTED: "◆", Status.UNFINISHED: "◇",
                 Status.PRUNED: "▼", Status.FAILED: "■"}
LOSS_SQUASH = 20  # a loss panel's max over its median beyond which its axis is logarithmic
TITLE_CHAR_IN = 0.085  # inches per character of the 10-point figure title (generous)
LEGEND_CHAR_IN = 0.065  # inches per character of an 8-point legend entry (generous)


def t_interval(values) -> tuple[float, float]:
    """95% Student-t interval of the mean; a single value gives a zero-width interval."""
    values = np.asarray(values, dtype=float)
    mean = values.mean()
    if len(values) < 2:
        return mean, mean
    half = ci95_half(values.std(ddof=1), len(values))
    return mean - half, mean + half


def mean_band(data: pd.DataFrame, by: list[str], value: str = "value") -> pd.DataFrame:
    """Mean of `value` per group with its 95% t-interval (`low`, `high`) and count `n`.

    Computed in one groupby and ``tables.ci95_half`` per group (its t quantile cached): seaborn's
    bootstrap errorbar per point is most of a figure's drawing time once a sweep has a hundred runs.
    """
    stats_ = data.groupby(by, dropna=False, sort=True)[value].agg(["mean", "std", "count"])
    # a single run's band is its mean (no interval): drawn as a line, not left out
    half = np.nan_to_num([ci95_half(std, n) for std, n in zip(stats_["std"], stats_["count"])])
    out = stats_.rename(columns={"mean": value, "count": "n"}).drop(columns="std")
    out["low"], out["high"] = out[value] - half, out[value] + half
    return out.reset_index()


# --- curves ---------------------------------------------------------------------------------------


def held_out_split(data: pd.DataFrame) -> str:
    """'val' where the runs have a validation split, else 'test'."""
    return "val" if data["split"].eq("val").any() else "test"


def training_curves(runset: RunSet, sweep: str, looks: dict[str, Look] | None = None):
    """Loss (top row) and top-1 (bottom row) against epoch; train left, validation right.

    One line per setting: mean over the runs that count, with its band; runs that stopped early
    are thin dotted lines ending in their status marker. A sweep that crosses optimizers with a
    value (the lr grid) has a column per optimizer instead, a row per split and measure, and the
    value as a sequential hue. A loss panel whose largest value is over `LOSS_SQUASH` times its
    median (a diverged run) has a log axis, said on its label.
    """
    runs = runset.runs[runset.runs["sweep"] == sweep]
    looks = looks or sweep_looks(runs, runset.swept[sweep])
    metrics = runset.metrics
    data = metrics[(metrics["sweep"] == sweep) & metrics["measure"].isin(CURVE_MEASURES)]
    splits = ("train", held_out_split(data))
    data = data[data["split"].isin(splits)].assign(dataset=lambda d: d["dataset"].astype(str),
                                                   optimizer=lambda d: d["optimizer"].astype(str))
    datasets = sorted(data["dataset"].unique()) or ["–"]
    by_optimizer = crosses_optimizers(runset.swept[sweep])
    tidy, rows, cols = _curve_panels(data, datasets, splits, by_optimizer)
    grid = facet_grid(tidy, row="row", col="col", row_order=rows, col_order=cols, sharex=True)
    grid.map_dataframe(_draw_curves, looks=looks)
    for k, ((row, col), ax) in enumerate(grid.axes_dict.items()):
        i, j = divmod(k, len(cols))
        dataset, measure, split = (*row.split("|"), col)[:3]
        where = f"{dataset}: " if len(datasets) > 1 else ""
        who = f"{col}: " if by_optimizer else ""
        ax.set_title(f"{who}{where}{SPLIT_NAMES[split]} {MEASURE_NAMES[measure]}", fontsize=10)
        ax.set_ylabel(MEASURE_NAMES[measure] if j == 0 else "", fontsize=9)
        ax.set_xlabel("epoch" if i == len(rows) - 1 else "", fontsize=9)
        if measure == "loss":
            _loss_axis(ax, tidy.loc[(tidy["row"] == row) & (tidy["col"] == col)])
        integer_ticks(ax)
        ax.grid(alpha=0.3)
    fig = grid.figure
    figure_title(fig, f"{sweep}: loss and top-1 per epoch, {SPLIT_NAMES[splits[0]]} against "
                f"{SPLIT_NAMES[splits[1]]}; mean over seeds with 95% t-interval "
                f"({seed_range(runs)})", runs)
    outside_legend(fig, _legend_handles(looks, runs), "setting (seeds)",
                   width_in=_legend_width(looks))
    return fig


def _curve_panels(data: pd.DataFrame, datasets: list[str], splits: tuple[str, str],
                  by_optimizer: bool) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The tidy frame a curves figure draws (layer 'mean': the means with their bands; 'run': the
    runs that stopped) with its facets `row` ('dataset|measure', or 'dataset|measure|split' with
    a column per optimizer) and `col` (the split, or the optimizer), and their orders."""
    panel_keys = ["dataset", "measure", "split"] + (["optimizer"] if by_optimizer else [])
    means = mean_band(data[data["status"].isin(AVERAGED)], [*panel_keys, "setting", "epoch"])
    stopped = data[data["status"].isin(list(STATUS_MARKERS))]
    tidy = pd.concat([means.assign(layer="mean"), stopped.assign(layer="run")], ignore_index=True)
    if by_optimizer:
        tidy["row"] = tidy["dataset"] + "|" + tidy["measure"] + "|" + tidy["split"]
        tidy["col"] = tidy["optimizer"]
        rows = [f"{d}|{m}|{sp}" for d in datasets for m in CURVE_MEASURES for sp in splits]
        return tidy, rows, sorted(data["optimizer"].unique(), key=optimizer_rank) or ["–"]
    tidy["row"], tidy["col"] = tidy["dataset"] + "|" + tidy["measure"], tidy["split"]
    return tidy, [f"{d}|{m}" for d in datasets for m in CURVE_MEASURES], list(splits)


def _draw_curves(data: pd.DataFrame, looks: dict[str, Look], **_) -> None:
    """One panel of `training_curves` (FacetGrid.map_dataframe): means with bands, stopped runs."""
    ax = plt.gca()
    _draw_means(ax, data[data["layer"] == "mean"], "epoch", looks)
    _draw_stopped_curves(ax, data[data["layer"] == "run"], looks)


def _loss_axis(ax, panel: pd.DataFrame) -> None:
    """A log axis where one run's loss would squash every other curve flat at the bottom."""
    values = panel["value"].to_numpy(dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() > LOSS_SQUASH * np.median(values):
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(NullLocator())  # minor log ticks double the time to save
        ax.set_ylabel(f"loss, log axis (up to {values.max():.2g})", fontsize=9)


def _draw_means(ax, means: pd.DataFrame | None, x: str, looks: dict[str, Look]) -> None:
    if means is None:
        return
    for setting, line in means.groupby("setting", sort=False):
        look = looks[setting]
        ax.plot(line[x], line["value"], color=look.colour, linestyle=look.linestyle,
                linewidth=1.6, label=look.label)
        ax.fill_between(line[x], line["low"], line["high"], color=look.colour, alpha=0.18,
                        linewidth=0)


def _draw_stopped_curves(ax, rows: pd.DataFrame | None, looks: dict[str, Look]) -> None:
    """Each run that did not complete: its own thin line (unless it is averaged, as diverged
    runs are) and its status marker at its last epoch."""
    if rows is None:
        return
    for (_, setting, status), run in rows.groupby(["run", "setting", "status"], sort=False):
        run = run.sort_values("epoch")
        colour = looks[setting].colour
        if status not in AVERAGED:
            ax.plot(run["epoch"], run["value"], color=colour, linestyle=":", linewidth=1.0,
                    label=f"_{status}")
        ax.scatter(run["epoch"].iloc[-1:], run["value"].iloc[-1:], marker=STATUS_MARKERS[status],
                   s=40, color=colour, edgecolors="0.15", linewidths=0.6, zorder=5)


# --- final values ---------------------------------------------------------------------------------


def final_metrics(runset: RunSet, sweep: str, looks: dict[str, Look] | None = None):
    """Final validation and test top-1 against the swept value, one panel per metric (and row per
    dataset). Numeric values: a line per optimizer (or combination of the other swept keys) with
    its band, each point in its setting's colour; categorical values: a point per setting."""
    runs = runset.runs[runset.runs["sweep"] == sweep]
    params = runset.swept[sweep]
    looks = looks or sweep_looks(runs, params)
    runs = _as_numbers(runs, params)
    x = _x_param(runs, params)
    numeric = x != "optimizer" and is_numeric_param(runs[x])
    metrics = [m for m in FINAL_METRICS if runs[f"final_{m}"].notna().any()] or [DEFAULT_REPORTED]
    runs = runs.assign(group=_group_labels(runs, [p for p in params if p != x]),
                       dataset=runs["dataset"].astype(str))
    datasets = sorted(runs["dataset"].unique())
    tidy = pd.concat([runs.assign(metric=m, value=runs[f"final_{m}"]) for m in metrics],
                     ignore_index=True)
    grid = facet_grid(tidy, row="dataset", col="metric", row_order=datasets, col_order=metrics,
                      panel=(3.6, 2.7))
    grid.map_dataframe(_draw_numeric if numeric else _draw_categorical, x=x, looks=looks,
                       params=params)
    xname = short_names(params).get(x, x)
    for k, ((dataset, metric), ax) in enumerate(grid.axes_dict.items()):
        i, j = divmod(k, len(metrics))
        where = f"{dataset}: " if len(datasets) > 1 else ""
        ax.set_title(f"{where}final {SPLIT_NAMES[metric.split('_')[0]]} "
                     f"{MEASURE_NAMES[metric.split('_')[1]]}", fontsize=10)
        ax.set_xlabel(xname if i == len(datasets) - 1 else "", fontsize=9)
        ax.set_ylabel("top-1 accuracy" if j == 0 else "", fontsize=9)
        ax.grid(alpha=0.3)
    fig = grid.figure
    figure_title(fig, f"{sweep}: final-epoch top-1 against {xname}, mean over seeds with 95% "
                f"t-interval ({seed_range(runs)})", runs)
    handles = _group_handles(runs, params) + _status_handles(runs)
    outside_legend(fig, handles, "line" if numeric else "",
                   width_in=max([len(h.get_label()) for h in handles] + [0]) * LEGEND_CHAR_IN)
    return fig


def _draw_numeric(data: pd.DataFrame, x: str, looks: dict[str, Look], column: str = "value",
                  **_) -> None:
    """A line per group through the means, its band, and each point in its setting's colour (one
    panel of `final_metrics`, through FacetGrid.map_dataframe)."""
    ax, runs = plt.gca(), data
    counted = runs[runs["status"].isin(AVERAGED) & runs[column].notna()]
    setting_at = counted.drop_duplicates(["group", x]).set_index(["group", x])["setting"]
    means = mean_band(counted, ["group", x], value=column)
    for k, (group, line) in enumerate(means.groupby("group", sort=False)):
        colour, style = _group_look(runs, group, k)
        ax.plot(line[x], line[column], color=colour, linestyle=style, linewidth=1.6,
                label=group or "mean over seeds")
        ax.fill_between(line[x], line["low"], line["high"], color=colour, alpha=0.15, linewidth=0)
        points = [looks[setting_at[(group, v)]].colour for v in line[x]]
        ax.scatter(line[x], line[column], c=points, s=30, edgecolors="0.15", linewidths=0.5,
                   zorder=4)
    _mark_stopped_final(ax, runs, x, column, looks, lambda values: values)
    log_x(ax, x, runs[x])


def _draw_categorical(data: pd.DataFrame, x: str, looks: dict[str, Look], params: list[str],
                      column: str = "value", **_) -> None:
    """A point per setting with its interval, values along x, groups side by side (one panel of
    `final_metrics`, through FacetGrid.map_dataframe)."""
    ax, runs = plt.gca(), data
    labels = setting_names(runs.drop_duplicates(x).assign(setting=lambda r: r[x]), [x]) \
        if x != "optimizer" else {}
    names = {v: (str(v) if x == "optimizer" else labels[v].split("=", 1)[-1])
             for v in runs[x].drop_duplicates()}
    order = list(dict.fromkeys(runs.set_index("setting").loc[setting_order(runs, params), x]))
    if x == "optimizer":  # the report's order: adam, adagrad, rmsprop, then the others
        order.sort(key=optimizer_rank)
    position = {v: i for i, v in enumerate(order)}
    groups = list(dict.fromkeys(runs["group"]))
    width = 0.6 / max(len(groups), 1)
    offset = {g: (k - (len(groups) - 1) / 2) * width for k, g in enumerate(groups)}
    counted = runs[runs["status"].isin(AVERAGED) & runs[column].notna()]
    for (setting, group, value), values in counted.groupby(["setting", "group", x], sort=False):
        mean, (low, high) = values[column].mean(), t_interval(values[column])
        where = position[value] + offset[group]
        look = looks[setting]
        ax.plot([where], [mean], marker="o", linestyle="none", color=look.colour, label=look.label)
        ax.vlines(where, low, high, color=look.colour, linewidth=1.4)
        ax.hlines([low, high], where - 0.08, where + 0.08, color=look.colour, linewidth=1.0)
    ax.set_xticks(range(len(order)), [names[v] for v in order],
                  rotation=30 if max(len(names[v]) for v in order) > 8 else 0,
                  ha="right" if max(len(names[v]) for v in order) > 8 else "center")
    ax.set_xlim(-0.6, len(order) - 0.4)
    _mark_stopped_final(ax, runs, x, column, looks,
                        lambda values: [position[v] for v in values])


def _mark_stopped_final(ax, runs, x, column, looks, to_x) -> None:
    """Runs that did not complete (and diverged ones) at their last value, with status markers."""
    rows = runs[runs["status"].isin(list(STATUS_MARKERS)) & runs[column].notna()]
    for status, pick in rows.groupby("status"):
        ax.scatter(to_x(list(pick[x])), pick[column], marker=STATUS_MARKERS[status], s=46,
                   c=[looks[s].colour for s in pick["setting"]], edgecolors="0.15",
                   linewidths=0.6, zorder=5)


def _as_numbers(runs: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """Swept columns whose every value reads as a number, as numbers: a column shared with another
    sweep can hold strings there (YAML reads 1e-05, without a dot, as a string)."""
    for p in params:
        if p != "optimizer" and runs[p].dtype == object and runs[p].map(type).ne(bool).all():
            numbers = pd.to_numeric(runs[p], errors="coerce")
            if numbers.notna().all():
                runs = runs.assign(**{p: numbers})
    return runs


def _group_labels(runs: pd.DataFrame, others: list[str]) -> pd.Series:
    """The other swept keys' values as a line label ('adam', 'adam, eps=1e-08'), '' where none."""
    if not others:
        return pd.Series("", index=runs.index)
    names = short_names(others)
    parts = [runs[p].map(short_value) if p == "optimizer"
             else names[p] + "=" + runs[p].map(short_value) for p in others]
    label = parts[0]
    for part in parts[1:]:
        label = label + ", " + part
    return label


def _group_look(runs: pd.DataFrame, group: str, index: int) -> tuple[tuple, str]:
    """An optimizer's line in its report-wide colour; otherwise dark grey, dashes telling apart."""
    optimizers = runs.loc[runs["group"] == group, "optimizer"].astype(str).unique()
    many = runs["optimizer"].nunique() > 1
    colour = optimizer_colour(optimizers[0]) if many and len(optimizers) == 1 else (0.25,) * 3
    return colour, ("-", "--", ":", "-.")[index % 4] if not many else "-"


def _group_handles(runs: pd.DataFrame, params: list[str]) -> list:
    groups = [g for g in dict.fromkeys(runs["group"]) if g]
    return [Line2D([], [], color=_group_look(runs, g, k)[0], linestyle=_group_look(runs, g, k)[1],
                   label=g) for k, g in enumerate(groups)]


def _x_param(runs: pd.DataFrame, params: list[str]) -> str:
    """The numeric swept key with the most values, else the first swept key, else the optimizer."""
    numeric = [p for p in params if p != "optimizer" and is_numeric_param(runs[p])]
    if numeric:
        return max(numeric, key=lambda p: runs[p].nunique())
    return next((p for p in params if p != "optimizer"), "optimizer")


def log_x(ax, param: str, values: pd.Series) -> None:
    """A log x axis for lr-like keys (``sweeps.wants_log_axis``), symlog where a value is 0."""
    if not wants_log_axis(param, values):
        return
    values = pd.to_numeric(values, errors="coerce").dropna()
    if (values > 0).all():
        ax.set_xscale("log")
    else:  # weight_decay 0 alongside 1e-4..1e-2: linear near zero, logarithmic above
        ax.set_xscale("symlog", linthresh=values[values > 0].min())
    # decade ticks are enough to read; minor log ticks double the time to save a figure
    ax.xaxis.set_minor_locator(NullLocator())


# --- legends and titles ---------------------------------------------------------------------------


def _legend_handles(looks: dict[str, Look], runs: pd.DataFrame) -> list:
    handles = [Line2D([], [], color=look.colour, linestyle=look.linestyle, label=look.label)
               for look in looks.values()]
    return handles + _status_handles(runs)


def _status_handles(runs: pd.DataFrame) -> list:
    present = set(runs["status"])
    return [Line2D([], [], color="0.4", marker=marker, linestyle="none", label=status)
            for status, marker in STATUS_MARKERS.items() if status in present]


def _legend_width(looks: dict[str, Look]) -> float:
    return max([len(look.label) for look in looks.values()] + [16]) * LEGEND_CHAR_IN


def figure_title(fig, text: str, runs: pd.DataFrame | None = None) -> None:
    """The figure title, wrapped to the panels' width (call it before the legend widens the
    figure) and set flush left, so that it never runs into the legend or off the canvas."""
    unfinished = []
    if runs is not None:
        counts = runs["status"].value_counts()
        unfinished = [f"{STATUS_GLYPHS[s]} {s}: {counts[s]}" for s in STATUS_MARKERS
                      if counts.get(s)]
        never = runs[runs[[c for c in runs.columns if c.startswith("final_")]].isna().all(axis=1)]
        if len(never):
            unfinished.append(f"no epoch finished: {len(never)}")
    if unfinished:
        text += "\nmarked runs (only diverged ones are averaged): " + ", ".join(unfinished)
    width = max(20, int(fig.get_figwidth() / TITLE_CHAR_IN))
    lines = [wrapped for line in text.splitlines() for wrapped in textwrap.wrap(line, width)]
    fig.suptitle("\n".join(lines), fontsize=10, x=0.01, ha="left")


# --- files ----------------------------------------------------------------------------------------


def write_figures(runset: RunSet, out_dir, workers: int | None = None) -> dict[str, list[Path]]:
    """Draw every sweep's figures into out_dir as PNG: {sweep: [paths]} (an Optuna study's
    figures beside them: ``optuna_study.write_study_figures``).

    workers: processes drawing in parallel (default: one per CPU); 1 draws in this process.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    looks = {sweep: sweep_looks(runset.runs[runset.runs["sweep"] == sweep], runset.swept[sweep])
             for sweep in runset.sweeps}  # one colour per setting for all of a sweep's figures
    jobs = [(sweep, kind, out_dir / f"{slug(sweep)}_{kind}.png")
            for sweep in runset.sweeps for kind in DRAWERS]
    written: dict[str, list[Path]] = {}
    for sweep, _, path in _run_jobs(runset, looks, jobs, workers):
        written.setdefault(sweep, []).append(path)
    return written


DRAWERS = {"curves": training_curves, "final": final_metrics}
_SHARED: dict = {}  # the RunSet and looks, handed to forked workers without pickling them


def _run_jobs(runset: RunSet, looks: dict, jobs: list, workers: int | None) -> list:
    """Draw (sweep, kind, path) jobs; matplotlib holds one core per figure, so fork one per CPU."""
    workers = min(workers or available_cores(), len(jobs))
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [_draw_job(job, runset, looks) for job in jobs]
    _SHARED.update(runset=runset, looks=looks)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(_draw_job, jobs, chunksize=1)
    finally:
        _SHARED.clear()


def _draw_job(job, runset: RunSet | None = None, looks: dict | None = None):
    sweep, kind, path = job
    looks = looks if looks is not None else _SHARED["looks"]
    figure = DRAWERS[kind](runset or _SHARED["runset"], sweep, looks[sweep])
    return sweep, kind, save(figure, path)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "sweep"
