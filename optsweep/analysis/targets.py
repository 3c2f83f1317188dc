"""Time to target: how soon each setting gets close to the best its sweep reached.

Final-epoch tables say where settings end; this says how fast they get there. Per setting, the
validation curve (the selection metric, mean over the seeds that count, epoch by epoch) is compared
with the sweep's best value of any setting's mean curve. A setting reaches a target at the first
epoch whose mean is within the target: 95% and 99% of the best for an accuracy, or at most 1.05
and 1.01 times the best for a loss (the objective's direction, ``contract.maximize``). The time is
the epoch's training time since the start: cumulative ``epoch_seconds`` (the training passes of
the epochs up to it, mean over seeds; evaluation is ``eval_seconds``, left out here), so settings
run on the same hardware compare fairly.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import pandas as pd

from optsweep.analysis.load import RunSet
from optsweep.contract import AVERAGED, DEFAULT_SELECT, maximize

FRACTIONS = (0.95, 0.99)  # of the best accuracy; a loss target is best * (2 - fraction)
KEYS = ["sweep", "dataset", "setting"]
TOLERANCE = 1e-9  # relative: 0.95 * 0.8 is 0.7600000000000001 in floating point


def target_value(best: float, fraction: float, metric: str) -> float:
    """The value a setting has to reach: ``fraction`` of the best accuracy, or the best loss
    times ``2 - fraction`` (0.95 -> 1.05 times the best)."""
    return best * fraction if maximize(metric) else best * (2.0 - fraction)


def reached(value: float, target: float, metric: str) -> bool:
    slack = TOLERANCE * abs(target)
    return value >= target - slack if maximize(metric) else value <= target + slack


def first_reaching(values: Sequence[float], seconds: Sequence[float], target: float,
                   metric: str) -> Optional[tuple[int, float]]:
    """(epoch, cumulative seconds) of the first epoch (counted from 1) whose value reaches
    ``target``; None when none does. NaN values (an epoch without the metric) never reach."""
    elapsed = 0.0
    for epoch, (value, spent) in enumerate(zip(values, seconds), start=1):
        elapsed += 0.0 if spent is None or math.isnan(spent) else spent
        if value is not None and not math.isnan(value) and reached(value, target, metric):
            return epoch, elapsed
    return None


def mean_curves(runset: RunSet, metric: str) -> pd.DataFrame:
    """Per (sweep, dataset, setting, epoch): the mean of ``metric`` and of epoch_seconds over the
    runs that count (``contract.AVERAGED``), in epoch order."""
    tidy = runset.metrics
    tidy = tidy[tidy["status"].isin(AVERAGED) & tidy["metric"].isin([metric, "epoch_seconds"])]
    wide = (tidy.groupby([*KEYS, "epoch", "metric"], dropna=False, sort=False)["value"].mean()
            .unstack("metric").reindex(columns=[metric, "epoch_seconds"]))
    return wide.reset_index().sort_values([*KEYS, "epoch"], kind="stable")


def time_to_target(runset: RunSet, metric: str = DEFAULT_SELECT,
                   fractions: Sequence[float] = FRACTIONS) -> pd.DataFrame:
    """One row per setting: sweep, dataset, setting, metric, best (the sweep's best mean value),
    and per fraction f (as a percentage p): target_<p>, epoch_<p>, seconds_<p> (NaN: never)."""
    curves = mean_curves(runset, metric)
    rows = []
    for (sweep, dataset), sweep_curves in curves.groupby(["sweep", "dataset"], sort=False,
                                                         dropna=False):
        values = sweep_curves[metric].dropna()
        if values.empty:
            continue
        best = float(values.max() if maximize(metric) else values.min())
        for setting, curve in sweep_curves.groupby("setting", sort=False):
            row = {"sweep": sweep, "dataset": dataset, "setting": setting, "metric": metric,
                   "best": best}
            for fraction in fractions:
                label = f"{round(fraction * 100):d}"
                target = target_value(best, fraction, metric)
                hit = first_reaching(curve[metric].tolist(), curve["epoch_seconds"].tolist(),
                                     target, metric)
                row[f"target_{label}"] = target
                row[f"epoch_{label}"], row[f"seconds_{label}"] = hit or (math.nan, math.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def display_targets(table: pd.DataFrame, fractions: Sequence[float] = FRACTIONS) -> pd.DataFrame:
    """The table as people read it: 'epoch 3 (33.0 s)' or 'never' per target."""
    shown = table[KEYS].copy()
    for fraction in fractions:
        label = f"{round(fraction * 100):d}"
        name = f"{label}% of best" if table.empty or maximize(table["metric"].iloc[0]) \
            else f"{2 - fraction:g} x best"
        shown[name] = ["never" if pd.isna(e) else f"epoch {int(e)} ({s:.1f} s)"
                       for e, s in zip(table[f"epoch_{label}"], table[f"seconds_{label}"])]
    return shown
