"""Is the best setting really better? Welch's t-test of final metrics over seeds.

Welch's test (unequal variances) because settings differ in spread: a large lr is often both worse
and noisier than a good one.
"""
from __future__ import annotations

import math

import pandas as pd
from scipy import stats

from optsweep.analysis.load import RunSet
from optsweep.analysis.tables import best_settings, lower_is_better, setting_table
from optsweep.contract import AVERAGED

ALPHA = 0.05


def welch(a, b) -> float:
    """Two-sided p-value of Welch's t-test; nan where it is undefined."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def verdict(p: float, n_best: int, n_other: int, difference: float, alpha: float = ALPHA) -> str:
    if n_best < 2 or n_other < 2:
        return "not tested (needs 2 or more seeds in both settings)"
    if math.isnan(p):  # both settings gave identical numbers on every seed
        return "within noise" if difference == 0 else "not tested (no spread over seeds)"
    return f"significant (p={p:.3g})" if p < alpha else f"within noise (p={p:.3g})"


def compare_to_best(runset: RunSet, metric: str = "test_acc1", alpha: float = ALPHA,
                    table: pd.DataFrame | None = None, select: str | None = None) -> pd.DataFrame:
    """The best setting of each (sweep, dataset) by ``select`` (default: ``metric``) against every
    other setting there, compared on ``metric``.

    Columns: sweep, dataset, best, setting, n_best, n, best_mean, mean, difference (setting - best),
    p_value, significant (bool), verdict.
    """
    table = setting_table(runset, metric, select) if table is None else table
    counted = runset.runs[runset.runs["status"].isin(AVERAGED)]
    values = counted.groupby(["sweep", "dataset", "setting"], dropna=False)[f"final_{metric}"]
    samples = {key: v.dropna().to_numpy() for key, v in values}
    rows = []
    for best in best_settings(table, select or metric).itertuples(index=False):
        best_values = samples.get((best.sweep, best.dataset, best.setting), [])
        others = table[(table["sweep"] == best.sweep) & (table["dataset"] == best.dataset)
                       & (table["setting"] != best.setting)]
        for other in others.itertuples(index=False):
            other_values = samples.get((other.sweep, other.dataset, other.setting), [])
            p = welch(best_values, other_values)
            diff = float(getattr(other, f"{metric}_mean") - getattr(best, f"{metric}_mean"))
            rows.append({
                "sweep": best.sweep, "dataset": best.dataset, "best": best.setting,
                "setting": other.setting, "n_best": len(best_values), "n": len(other_values),
                "best_mean": getattr(best, f"{metric}_mean"), "mean": getattr(other, f"{metric}_mean"),
                "difference": diff, "p_value": p, "significant": bool(p < alpha),
                "verdict": verdict(p, len(best_values), len(other_values), diff, alpha),
            })
    columns = ["sweep", "dataset", "best", "setting", "n_best", "n", "best_mean", "mean",
               "difference", "p_value", "significant", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def describe_difference(row, metric: str) -> str:
    """'0.1000 lower' style wording that respects whether higher or lower is better."""
    if pd.isna(row["difference"]):
        return "no final value"
    worse = "higher" if lower_is_better(metric) else "lower"
    return f"{abs(row['difference']):.4f} {worse}" if row["difference"] else "equal"
