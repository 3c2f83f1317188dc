"""The benchmark's figures: tuning-budget curves, performance profiles, lr sensitivity, winner
stability.

Each optimizer keeps the colour it has everywhere in the report (``style.optimizer_colour``); each
figure is seaborn's lines or points over the same tidy table its CSV holds (a ``FacetGrid``
column per workload or measure, ``sns.lineplot``/``sns.scatterplot`` mapped on it with no
estimator: the table's numbers are drawn as they are), so the picture and the numbers agree.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from optsweep.analysis.profile import MEASURES, TAU_MAX, profile_curve
from optsweep.analysis.style import (
    facet_grid,
    integer_ticks,
    optimizer_colour,
    outside_legend,
    save,
)

PANEL_IN = (4.2, 3.2)  # inches per panel: room for a legend of a dozen optimizers
LEGEND_CHAR_IN = 0.065  # inches per character of an 8-point legend entry (generous)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path)


def _grid(frame: pd.DataFrame, col: str, marker: str | None = None):
    """A FacetGrid column per value of `col` (in the table's order), and the hue keywords that
    give each optimizer its report-wide colour; the optimizers' legend outside, right."""
    grid = facet_grid(frame, col=col, col_order=list(dict.fromkeys(frame[col])), panel=PANEL_IN)
    optimizers = [str(o) for o in dict.fromkeys(frame["optimizer"])]
    hue = {"hue": "optimizer", "hue_order": optimizers, "legend": False,
           "palette": {o: optimizer_colour(o) for o in optimizers}}
    handles = [Line2D([], [], color=optimizer_colour(o), marker=marker,
                      linestyle="none" if marker else "-", label=o) for o in optimizers]
    outside_legend(grid.figure, handles, "optimizer",
                   width_in=max(len(o) for o in optimizers) * LEGEND_CHAR_IN)
    return grid, hue


def draw_budget(curves: pd.DataFrame):
    """Per workload: expected best of k trials (solid: the unbiased estimate, drawn for k up to
    the trials that gave a value, where it is defined) with its jackknife band where the table
    has one (``budget.BAND_SHARE``), and the study's best so far (dotted)."""
    curves = curves.assign(optimizer=curves["optimizer"].astype(str))
    grid, hue = _grid(curves, "workload")
    if "band_low" in curves.columns:
        grid.map_dataframe(_band)
    grid.map_dataframe(sns.lineplot, x="k", y="expected_best", estimator=None, **hue)
    grid.map_dataframe(sns.lineplot, x="k", y="best_so_far", estimator=None, linestyle=":",
                       linewidth=1, **hue)
    grid.set_titles("{col_name}")
    grid.set_axis_labels("trials k", f"best {curves['metric'].iloc[0]}")
    for ax in grid.axes.flat:
        integer_ticks(ax)
    grid.figure.suptitle("solid: expected best of k trials (unbiased); dotted: best so far",
                         fontsize=10, x=0.01, ha="left")
    return grid.figure


def _band(data: pd.DataFrame, **_) -> None:
    """Each optimizer's pre-computed band (band_low..band_high over k) in its colour, where the
    table gives one (FacetGrid.map_dataframe)."""
    ax = plt.gca()
    for optimizer, rows in data[data["band_low"].notna()].groupby("optimizer", sort=False):
        ax.fill_between(rows["k"], rows["band_low"], rows["band_high"], linewidth=0, alpha=0.18,
                        color=optimizer_colour(str(optimizer)))


def draw_profile(table: pd.DataFrame):
    """rho(tau) against tau in [1, 4], one panel per measure (epochs, seconds)."""
    taus = np.linspace(1.0, TAU_MAX, 301)
    curves = pd.DataFrame([
        {"measure": measure, "optimizer": str(optimizer), "tau": tau, "rho": rho}
        for measure in MEASURES for optimizer, rows in table.groupby("optimizer", sort=False)
        for tau, rho in zip(taus, profile_curve(rows[f"ratio_{measure}"], taus))])
    grid, hue = _grid(curves, "measure")
    grid.map_dataframe(sns.lineplot, x="tau", y="rho", estimator=None, drawstyle="steps-post",
                       **hue)
    grid.set_titles("time to target in {col_name}")
    grid.set_axis_labels("tau (ratio to the fastest)", "fraction of workloads within tau")
    grid.set(ylim=(-0.03, 1.03), xlim=(1, TAU_MAX))
    return grid.figure


def draw_lr(trials: pd.DataFrame, metric: str):
    """Every trial's value against its lr (log axis), one panel per workload."""
    trials = trials.assign(optimizer=trials["optimizer"].astype(str))
    grid, hue = _grid(trials, "workload", marker="o")
    grid.map_dataframe(sns.scatterplot, x="lr", y="value", s=18, linewidth=0, **hue)
    grid.set_titles("{col_name}")
    grid.set_axis_labels("lr", f"{metric} (every trial)")
    grid.set(xscale="log")
    return grid.figure


def budget_figure(curves: pd.DataFrame, path: Path) -> Path | None:
    return None if curves.empty else _save(draw_budget(curves), path)


def profile_figure(table: pd.DataFrame, path: Path) -> Path | None:
    return None if table.empty else _save(draw_profile(table), path)


def lr_figure(trials: pd.DataFrame, metric: str, path: Path) -> Path | None:
    """``draw_lr`` of the trials with a positive lr (those without one have no place on it)."""
    trials = trials[trials["lr"].notna() & (trials["lr"] > 0)]
    return None if trials.empty else _save(draw_lr(trials, metric), path)


def draw_stability(stability: pd.DataFrame):
    """A bar per optimizer of its share of wins over resampled seeds (``stability``), a panel per
    workload (seaborn's ``catplot``), each optimizer in its report colour."""
    order = list(dict.fromkeys(stability["optimizer"]))
    grid = sns.catplot(stability, kind="bar", x="share", y="optimizer", col="workload",
                       order=order, hue="optimizer", hue_order=order, legend=False,
                       palette={o: optimizer_colour(o) for o in order}, height=0.35 * len(order)
                       + 1.2, aspect=1.4, sharex=True)
    grid.set(xlim=(0, 1))
    grid.set_axis_labels("share of resamples won", "")
    grid.set_titles("{col_name}")
    return grid.figure


def stability_figure(stability: pd.DataFrame, path: Path) -> Path | None:
    return None if stability.empty else _save(draw_stability(stability), path)
