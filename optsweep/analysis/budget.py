"""How the answer depends on the tuning budget: the expected best validation value after k trials.

A benchmark gives every optimizer the same number of trials, but a reader's own budget may be
smaller. Dodge et al. 2019 ("Show Your Work: Improved Reporting of Experimental Results") estimate
the best value a budget of k trials would find from the N trials that ran: k independent draws
with replacement from their empirical distribution. With the values sorted v(1) <= ... <= v(N),
the chance that the maximum of k draws is v(i) or less is (i/N)^k, so

    E_k[max] = sum_i v(i) [(i/N)^k - ((i-1)/N)^k].

For a loss the best is the minimum: the same formula on the negated values. The estimate treats
the trials as independent draws; a TPE study's later trials depend on its earlier ones (the sampler
learns), so for TPE it describes "k trials drawn like these", not "the first k trials" (the
best-so-far curve, in the order the trials ran, shows that one). Tang et al. 2020 give the form
without replacement.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from optsweep.contract import maximize

CAVEAT = ("Expected best of k trials: k draws with replacement from the study's trials (Dodge et "
          "al. 2019). A TPE study's trials are not independent draws (each depends on the ones "
          "before), so read it as the value k trials like these would reach; the best-so-far "
          "curve is the study's own, in trial order.")


def expected_best(values: Sequence[float], k: int, metric: str = "val_acc1") -> float:
    """Dodge et al.'s expected maximum (minimum for a loss ``metric``) of k draws with
    replacement from ``values``."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0 or k < 1:
        return float("nan")
    sign = 1.0 if maximize(metric) else -1.0
    ordered = np.sort(sign * v)
    n = len(ordered)
    i = np.arange(1, n + 1)
    weights = (i / n) ** k - ((i - 1) / n) ** k
    return float(sign * np.sum(ordered * weights))


def best_so_far(values: Sequence[float], metric: str = "val_acc1") -> list[float]:
    """The best value among the first 1, 2, ... trials, in the order given."""
    v = np.asarray(values, dtype=float)
    running = np.maximum.accumulate(v) if maximize(metric) else np.minimum.accumulate(v)
    return running.tolist()


def budget_curves(trials: pd.DataFrame, metric: str, budget: int | None = None) -> pd.DataFrame:
    """One row per (workload, optimizer, k): expected_best (k = 1 .. budget, default the trial
    count) and best_so_far (k up to the trials that ran), from ``trials`` (columns workload,
    optimizer, trial, value: one row per trial that gave a value)."""
    rows = []
    for (workload, optimizer), group in trials.groupby(["workload", "optimizer"], sort=False):
        ordered = group.sort_values("trial")["value"].to_numpy(dtype=float)
        running = best_so_far(ordered, metric)
        for k in range(1, (budget or len(ordered)) + 1):
            rows.append({"workload": workload, "optimizer": optimizer, "k": k, "metric": metric,
                         "trials": len(ordered), "expected_best": expected_best(ordered, k, metric),
                         "best_so_far": running[k - 1] if k <= len(running) else np.nan})
    return pd.DataFrame(rows, columns=["workload", "optimizer", "k", "metric", "trials",
                                       "expected_best", "best_so_far"])
