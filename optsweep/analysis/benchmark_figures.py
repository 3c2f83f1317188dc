"""The benchmark's three figures: tuning-budget curves, performance profiles, lr sensitivity.

Each optimizer keeps the colour it has everywhere in the report (``style.optimizer_colour``); each
figure is drawn from the same tidy table its CSV holds, so the picture and the numbers agree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from optsweep.analysis.profile import MEASURES, TAU_MAX, profile_curve
from optsweep.analysis.style import integer_ticks, new_figure, optimizer_colour, save

PANEL_IN = (4.2, 3.2)  # inches per panel: room for a legend of a dozen optimizers


def _panels(count: int):
    fig, axes = new_figure(1, count, panel=PANEL_IN)
    return fig, list(axes.flat)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path)


def _per_workload(frame: pd.DataFrame, draw: Callable[[Any, pd.DataFrame, str, Any], None]):
    """A panel per workload (in the table's order), ``draw(ax, rows, optimizer, colour)`` for each
    optimizer's rows in it, the legend on the last panel; returns the figure and its axes."""
    workloads = list(dict.fromkeys(frame["workload"]))
    fig, axes = _panels(len(workloads))
    for ax, workload in zip(axes, workloads):
        for optimizer, rows in frame[frame["workload"] == workload].groupby("optimizer",
                                                                             sort=False):
            draw(ax, rows, str(optimizer), optimizer_colour(str(optimizer)))
        ax.set_title(workload)
    axes[-1].legend(fontsize=8, loc="best")
    return fig, axes


def draw_budget(curves: pd.DataFrame):
    """Per workload: expected best of k trials (solid: the unbiased estimate, drawn for k up to
    the trials that gave a value, where it is defined) and the study's best so far (dotted)."""
    def draw(ax, line: pd.DataFrame, optimizer: str, colour) -> None:
        defined = line[line["expected_best"].notna()]
        ax.plot(defined["k"], defined["expected_best"], color=colour, label=optimizer)
        ax.plot(line["k"], line["best_so_far"], color=colour, linestyle=":", linewidth=1)

    fig, axes = _per_workload(curves, draw)
    for ax in axes:
        integer_ticks(ax)
        ax.set(xlabel="trials k",
               ylabel=f"best {curves['metric'].iloc[0]} (expected, unbiased; dotted: so far)")
    return fig


def draw_profile(table: pd.DataFrame):
    """rho(tau) against tau in [1, 4], one panel per measure (epochs, seconds)."""
    taus = np.linspace(1.0, TAU_MAX, 301)
    fig, axes = _panels(len(MEASURES))
    for ax, measure in zip(axes, MEASURES):
        for optimizer, rows in table.groupby("optimizer", sort=False):
            ax.step(taus, profile_curve(rows[f"ratio_{measure}"], taus), where="post",
                    color=optimizer_colour(str(optimizer)), label=str(optimizer))
        ax.set(title=f"time to target in {measure}", xlabel="tau (ratio to the fastest)",
               ylabel="fraction of workloads within tau", ylim=(-0.03, 1.03), xlim=(1, TAU_MAX))
    axes[-1].legend(fontsize=8, loc="lower right")
    return fig


def draw_lr(trials: pd.DataFrame, metric: str):
    """Every trial's value against its lr (log axis), one panel per workload."""
    def draw(ax, points: pd.DataFrame, optimizer: str, colour) -> None:
        ax.scatter(points["lr"], points["value"], s=18, label=optimizer, color=colour)

    fig, axes = _per_workload(trials, draw)
    for ax in axes:
        ax.set_xscale("log")
        ax.set(xlabel="lr", ylabel=f"{metric} (every trial)")
    return fig


def budget_figure(curves: pd.DataFrame, path: Path) -> Path | None:
    return None if curves.empty else _save(draw_budget(curves), path)


def profile_figure(table: pd.DataFrame, path: Path) -> Path | None:
    return None if table.empty else _save(draw_profile(table), path)


def lr_figure(trials: pd.DataFrame, metric: str, path: Path) -> Path | None:
    """``draw_lr`` of the trials with a positive lr (those without one have no place on it)."""
    trials = trials[trials["lr"].notna() & (trials["lr"] > 0)]
    return None if trials.empty else _save(draw_lr(trials, metric), path)
