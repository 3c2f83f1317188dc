"""Figures of a sweep, each one seaborn figure-level call on tidy data.

Every figure function returns its seaborn grid (tests read the drawn lines back from it);
`write_figures` saves them as PNG. Means over seeds carry a 95% Student-t interval: with the 2-5
seeds of a typical study a bootstrap interval is too narrow and changes from run to run.
"""
from __future__ import annotations

import functools
import math
import multiprocessing
import os
import re
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

from optsweep.analysis.load import RunSet
from optsweep.contract import Status
from optsweep.analysis.sweeps import (
    AGGREGATED, is_numeric_param, seed_range, seeds_per_setting, setting_order, short_names,
    format_value, wants_log_axis,
)

CURVE_METRICS = ("train_loss", "train_acc1")
FINAL_METRICS = ("val_acc1", "val_acc5", "test_acc1", "test_acc5")
# How runs that did not complete are drawn on top of the means (they are never dropped silently).
STATUS_MARKERS = {Status.DIVERGED: "X", Status.INTERRUPTED: "D", Status.UNFINISHED: "d",
                  Status.PRUNED: "v", Status.FAILED: "s"}
STATUS_GLYPHS = {Status.DIVERGED: "✕", Status.INTERRUPTED: "◆", Status.UNFINISHED: "◇",
                 Status.PRUNED: "▼", Status.FAILED: "■"}
DPI = 80  # enough to read on screen; PNG encoding time grows with the pixel count
LEGEND_CHAR_IN = 0.075  # inches per character of an 8-point legend entry (generous)
TITLE_LINE_IN = 0.22  # inches per line of the 10-point figure title


def t_interval(values) -> tuple[float, float]:
    """95% Student-t interval of the mean; a single value gives a zero-width interval."""
    values = np.asarray(values, dtype=float)
    mean = values.mean()
    if len(values) < 2:
        return mean, mean
    half = _t975(len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return mean - half, mean + half


def mean_band(data: pd.DataFrame, by: list[str], value: str = "value") -> pd.DataFrame:
    """Mean of `value` per group with its 95% t-interval (`low`, `high`) and count `n`.

    Computed in one vectorised groupby: seaborn's own errorbar runs a Python function per point,
    which is most of a figure's drawing time once a sweep has a hundred runs.
    """
    stats_ = data.groupby(by, dropna=False, sort=True)[value].agg(["mean", "std", "count"])
    dof = (stats_["count"] - 1).clip(lower=1).to_numpy()
    half = stats.t.ppf(0.975, dof) * stats_["std"].fillna(0).to_numpy() / np.sqrt(stats_["count"])
    out = stats_.rename(columns={"mean": value, "count": "n"}).drop(columns="std")
    out["low"], out["high"] = out[value] - half, out[value] + half
    return out.reset_index()


@functools.lru_cache(maxsize=None)
def _t975(dof: int) -> float:
    return float(stats.t.ppf(0.975, dof))  # ~0.1 ms a call; a figure asks hundreds of times


def training_curves(runset: RunSet, sweep: str, metrics=CURVE_METRICS) -> sns.FacetGrid:
    """Training loss and accuracy against epoch, one line (mean over seeds) per setting."""
    runs = runset.runs[runset.runs["sweep"] == sweep]
    data = runset.metrics[(runset.metrics["sweep"] == sweep) & runset.metrics["metric"].isin(metrics)]
    labels, palette = _setting_legend(runs, runset.swept[sweep])
    data = data.assign(setting=data["setting"].map(labels))
    many_datasets = runs["dataset"].nunique() > 1
    row = "dataset" if many_datasets else None
    means = mean_band(data, ["dataset", "metric", "setting", "epoch"])
    grid = sns.relplot(
        data=means, x="epoch", y="value", kind="line", hue="setting", hue_order=list(palette),
        palette=palette, col="metric", col_order=[m for m in metrics if m in set(data["metric"])],
        row=row, estimator=None, height=3.0, aspect=1.3, facet_kws={"sharey": False}, legend=False,
    )
    _draw_bands(grid, means, "epoch", row=row, col="metric", hue="setting", palette=palette)
    _legend_outside(grid, palette, runs, title="setting (seeds)")
    grid.set_titles("{row_name} | {col_name}" if many_datasets else "{col_name}")
    grid.set_axis_labels("epoch", "")
    last = data.sort_values("epoch").groupby(["run", "metric"]).tail(1)
    _mark_unfinished(grid, last, "epoch", row="dataset" if many_datasets else None, col="metric",
                     color_of=lambda rows: [palette[s] for s in rows["setting"]])
    _title(grid, f"{sweep}: training curves, mean over seeds with 95% t-interval ({seed_range(runs)})",
           runs)
    return grid


def final_metrics(runset: RunSet, sweep: str, metrics=FINAL_METRICS) -> sns.FacetGrid:
    """Final-epoch validation and test accuracy against the swept value, one panel per optimizer."""
    runs = _panel_column(runset.runs[runset.runs["sweep"] == sweep])
    params = runset.swept[sweep]
    x = _x_param(runs, params)
    metrics = [m for m in metrics if runs[f"final_{m}"].notna().any()]
    long = _final_long(runs, params, x, metrics)
    hue = "others" if long["others"].ne("").any() else None
    row = "panel" if x != "optimizer" else ("dataset" if runs["dataset"].nunique() > 1 else None)
    counted = long[long["status"].isin(AGGREGATED)]
    numeric = x != "optimizer" and is_numeric_param(runs[x])
    if numeric:
        means = mean_band(counted, [c for c in (row, "metric", "others", x) if c])
        palette = dict(zip(sorted(means["others"].unique()),
                           sns.color_palette(n_colors=means["others"].nunique())))
        grid = sns.relplot(
            data=means, x=x, y="value", hue=hue, palette=palette if hue else None, row=row,
            col="metric", col_order=metrics, kind="line", marker="o", estimator=None,
            height=2.6, aspect=1.2, legend="auto" if hue else False,  # an empty one costs a draw
        )
        _draw_bands(grid, means, x, row=row, col="metric", hue="others",
                    palette=palette if hue else {k: "C0" for k in palette})
        _log_x(grid, x, runs[x])
    else:
        order = setting_order(runs.assign(setting=runs[x].map(format_value)), [x])
        counted = counted.assign(**{x: counted[x].map(format_value)})
        grid = sns.catplot(
            data=counted, x=x, y="value", hue=hue, row=row, col="metric", col_order=metrics,
            order=order, kind="point", errorbar=t_interval, linestyle="none", capsize=0.15,
            height=2.6, aspect=1.2, legend="auto" if hue else False,
        )
        long = long.assign(**{x: long[x].map(lambda v: order.index(format_value(v)))})
    grid.set_titles("{row_name} | {col_name}" if row else "{col_name}")
    grid.set_axis_labels(x, "accuracy (fraction)")
    _mark_unfinished(grid, long, x, row=row, col="metric", color_of=lambda rows: "0.2")
    _title(grid, f"{sweep}: final epoch, mean over seeds with 95% t-interval ({seed_range(runs)})",
           runs)
    return grid


def write_figures(runset: RunSet, out_dir, studies=None, workers: int | None = None
                  ) -> dict[str, list[Path]]:
    """Draw every sweep's figures (and Optuna studies' beside them) into out_dir as PNG.

    workers: processes drawing in parallel (default: one per CPU); 1 draws in this process.
    """
    from optsweep.analysis.optuna_study import study_figures

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(sweep, kind, out_dir / f"{slug(sweep)}_{kind}.png")
            for sweep in runset.sweeps for kind in DRAWERS]
    written: dict[str, list[Path]] = {}
    for sweep, _, path in _run_jobs(runset, jobs, workers):
        written.setdefault(sweep, []).append(path)
    for study in studies or ():
        for kind, figure in study_figures(study).items():
            path = out_dir / f"{slug(study.sweep)}_{slug(study.name)}_{kind}.png"
            written.setdefault(study.sweep, []).append(save(figure, path))
    return written


DRAWERS = {"curves": training_curves, "final": final_metrics}
_SHARED: dict = {}  # the RunSet, handed to forked workers without pickling it


def _run_jobs(runset: RunSet, jobs: list, workers: int | None) -> list:
    """Draw (sweep, kind, path) jobs; matplotlib holds one core per figure, so fork one per CPU."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = min(workers or cpus or 1, len(jobs))
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [_draw_job(job, runset) for job in jobs]
    _SHARED["runset"] = runset
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(_draw_job, jobs, chunksize=1)
    finally:
        _SHARED.clear()


def _draw_job(job, runset: RunSet | None = None):
    sweep, kind, path = job
    grid = DRAWERS[kind](runset or _SHARED["runset"], sweep)
    return sweep, kind, save(grid.figure, path)


def save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "sweep"


# --- helpers ---------------------------------------------------------------------------------------


def _setting_legend(runs: pd.DataFrame, params: list[str]):
    """{setting: legend label with its seed count} and {label: colour}, in swept-value order."""
    order = setting_order(runs, params)
    seeds = seeds_per_setting(runs)
    labels = {s: f"{s} (n={int(seeds.get(s, 0))})" for s in order}
    ordered_values = params and params[0] != "optimizer" and is_numeric_param(runs[params[0]])
    name = "viridis" if ordered_values else ("tab10" if len(order) <= 10 else "husl")
    colours = sns.color_palette(name, n_colors=len(order))
    return labels, dict(zip(labels.values(), colours))


def _legend_outside(grid, palette: dict, runs: pd.DataFrame, title: str) -> None:
    """A figure legend right of the panels: one entry per setting, one per status marker drawn.

    Built by hand because seaborn's own outside legend draws the whole figure once more to measure
    it, which is a third of a figure's drawing time.
    """
    handles = [Line2D([], [], color=colour, label=label) for label, colour in palette.items()]
    present = set(runs["status"])
    handles += [Line2D([], [], color="0.3", marker=marker, linestyle="none", label=status)
                for status, marker in STATUS_MARKERS.items() if status in present]
    longest = max([len(title)] + [len(h.get_label()) for h in handles])
    old_width = grid.figure.get_figwidth()
    _grow(grid.figure, right=0.6 + LEGEND_CHAR_IN * longest)
    grid.figure.legend(handles=handles, title=title, loc="center left", frameon=False,
                       bbox_to_anchor=(old_width / grid.figure.get_figwidth(), 0.5),
                       fontsize=8, title_fontsize=9)


def _grow(figure, right: float = 0.0, top: float = 0.0) -> None:
    """Add `right` and `top` inches of margin, keeping the panels' size and spacing.

    Margins are made by arithmetic rather than bbox_inches="tight", which draws every figure
    one more time at save (a third of the saving time).
    """
    width, height = figure.get_size_inches()
    pars = figure.subplotpars
    new_width, new_height = width + right, height + top
    figure.set_size_inches(new_width, new_height)
    figure.subplots_adjust(left=pars.left * width / new_width, right=pars.right * width / new_width,
                           bottom=pars.bottom * height / new_height,
                           top=pars.top * height / new_height)


def _panel_column(runs: pd.DataFrame) -> pd.DataFrame:
    """`panel`: the optimizer, or optimizer and dataset where a sweep mixes datasets."""
    panel = runs["optimizer"].astype(str)
    if runs["dataset"].nunique() > 1:
        panel = panel + " · " + runs["dataset"].astype(str)
    return runs.assign(panel=panel)


def _x_param(runs: pd.DataFrame, params: list[str]) -> str:
    """The numeric swept key with the most values, else the first swept key, else the optimizer."""
    numeric = [p for p in params if p != "optimizer" and is_numeric_param(runs[p])]
    if numeric:
        return max(numeric, key=lambda p: runs[p].nunique())
    return next((p for p in params if p != "optimizer"), "optimizer")


def _final_long(runs, params, x, metrics) -> pd.DataFrame:
    """One row per run x final metric; `others` labels the swept keys that are not on the x axis."""
    others = [p for p in params if p not in (x, "optimizer")]
    names = short_names(others)
    label = pd.Series("", index=runs.index)
    for p in others:
        label = label + np.where(label == "", "", ", ") + names[p] + "=" + runs[p].map(format_value)
    keep = list(dict.fromkeys(["run", "status", "dataset", "optimizer", "panel", x]))
    long = runs.assign(others=label).melt(
        id_vars=[*keep, "others"], value_vars=[f"final_{m}" for m in metrics], var_name="metric")
    long["metric"] = long["metric"].str.removeprefix("final_")
    return long


def _log_x(grid, param: str, values: pd.Series) -> None:
    if not wants_log_axis(param, values):
        return
    values = pd.to_numeric(values, errors="coerce").dropna()
    for ax in grid.axes.flat:
        if (values > 0).all():
            ax.set_xscale("log")
        else:  # weight_decay 0 alongside 1e-4..1e-2: linear near zero, logarithmic above
            ax.set_xscale("symlog", linthresh=values[values > 0].min())
        # decade ticks are enough to read; minor log ticks double the time to save a figure
        ax.xaxis.set_minor_locator(NullLocator())


def _draw_bands(grid, means, x, row, col, hue, palette) -> None:
    """The 95% t-interval of each line as a shaded band, in the line's colour."""
    for (row_name, col_name), ax in _facets(grid):
        mask = pd.Series(True, index=means.index)
        for key, name in ((row, row_name), (col, col_name)):
            if key and name is not None:
                mask &= means[key].astype(str) == str(name)
        for name, band in means[mask].groupby(hue, sort=False):
            ax.fill_between(band[x], band["low"], band["high"], color=palette[name], alpha=0.2,
                            linewidth=0)


def _mark_unfinished(grid, rows, x, row, col, color_of) -> None:
    """Draw each run that did not complete at its last value, with its status's marker.

    row, col: the columns the grid is faceted by (None where it is not).
    """
    rows = rows[rows["status"].isin(list(STATUS_MARKERS)) & rows["value"].notna()]
    for (row_name, col_name), ax in _facets(grid):
        mask = pd.Series(True, index=rows.index)
        for key, name in ((row, row_name), (col, col_name)):
            if key and name is not None:
                mask &= rows[key].astype(str) == str(name)
        for status, marker in STATUS_MARKERS.items():
            pick = rows[mask & (rows["status"] == status)]
            if len(pick):
                ax.scatter(pick[x], pick["value"], marker=marker, s=46, c=color_of(pick),
                           edgecolors="white", linewidths=0.5, zorder=5)


def _facets(grid):
    """((row name, column name), axes) for every panel of a FacetGrid."""
    row_names = grid.row_names or [None]
    col_names = grid.col_names or [None]
    for i, row_name in enumerate(row_names):
        for j, col_name in enumerate(col_names):
            yield (row_name, col_name), grid.axes[i, j]


def _title(grid, text: str, runs: pd.DataFrame) -> None:
    counts = runs["status"].value_counts()
    unfinished = [f"{STATUS_GLYPHS[s]} {s}: {counts[s]}" for s in STATUS_MARKERS if counts.get(s)]
    never = runs[runs[[c for c in runs.columns if c.startswith("final_")]].isna().all(axis=1)]
    if len(never):
        unfinished.append(f"no epoch finished: {len(never)}")
    if unfinished:
        text += "\nmarked runs (not averaged unless diverged): " + ", ".join(unfinished)
    lines = text.count("\n") + 1
    _grow(grid.figure, top=TITLE_LINE_IN * lines + 0.1)
    grid.figure.suptitle(text, y=1 - 0.05 / grid.figure.get_figheight(), va="top", fontsize=10)
