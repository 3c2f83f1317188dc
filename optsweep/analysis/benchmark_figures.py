"""The benchmark's three figures: tuning-budget curves, performance profiles, lr sensitivity.

Each optimizer keeps the colour it has everywhere in the report (``style.optimizer_colour``); each
figure is drawn from the same tidy table its CSV holds, so the picture and the numbers agree.
"""
from __future__ import annotations

from pathlib import Path

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


def budget_figure(curves: pd.DataFrame, path: Path) -> Path | None:
    """Per workload: expected best of k trials (solid) and the study's best so far (dotted)."""
    if curves.empty:
        return None
    workloads = list(dict.fromkeys(curves["workload"]))
    fig, axes = _panels(len(workloads))
    for ax, workload in zip(axes, workloads):
        for optimizer, line in curves[curves["workload"] == workload].groupby("optimizer",
                                                                              sort=False):
            colour = optimizer_colour(str(optimizer))
            ax.plot(line["k"], line["expected_best"], color=colour, label=str(optimizer))
            ax.plot(line["k"], line["best_so_far"], color=colour, linestyle=":", linewidth=1)
        integer_ticks(ax)
        ax.set(title=workload, xlabel="trials k",
               ylabel=f"best {curves['metric'].iloc[0]} (expected; dotted: so far)")
    axes[-1].legend(fontsize=8, loc="best")
    return _save(fig, path)


def profile_figure(table: pd.DataFrame, path: Path) -> Path | None:
    """rho(tau) against tau in [1, 4], one panel per measure (epochs, seconds)."""
    if table.empty:
        return None
    taus = np.linspace(1.0, TAU_MAX, 301)
    fig, axes = _panels(len(MEASURES))
    for ax, measure in zip(axes, MEASURES):
        for optimizer, rows in table.groupby("optimizer", sort=False):
            ax.step(taus, profile_curve(rows[f"ratio_{measure}"], taus), where="post",
                    color=optimizer_colour(str(optimizer)), label=str(optimizer))
        ax.set(title=f"time to target in {measure}", xlabel="tau (ratio to the fastest)",
               ylabel="fraction of workloads within tau", ylim=(-0.03, 1.03), xlim=(1, TAU_MAX))
    axes[-1].legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def lr_figure(trials: pd.DataFrame, metric: str, path: Path) -> Path | None:
    """Every trial's value against its lr (log axis), one panel per workload."""
    trials = trials[trials["lr"].notna() & (trials["lr"] > 0)]
    if trials.empty:
        return None
    workloads = list(dict.fromkeys(trials["workload"]))
    fig, axes = _panels(len(workloads))
    for ax, workload in zip(axes, workloads):
        for optimizer, points in trials[trials["workload"] == workload].groupby("optimizer",
                                                                                sort=False):
            ax.scatter(points["lr"], points["value"], s=18, label=str(optimizer),
                       color=optimizer_colour(str(optimizer)))
        ax.set_xscale("log")
        ax.set(title=workload, xlabel="lr", ylabel=f"{metric} (every trial)")
    axes[-1].legend(fontsize=8, loc="best")
    return _save(fig, path)

