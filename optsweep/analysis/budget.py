"""How the answer depends on the tuning budget: the expected best validation value after k trials.

A benchmark gives every optimizer the same number of trials, but a reader's own budget may be
smaller. From the N trials that ran, sorted v(1) <= ... <= v(N), the best a budget of k trials
would find is estimated two ways:

- without replacement (Tang et al. 2020, "Showing Your Work Doesn't Always Work"): the mean over
  all C(N, k) subsets of k trials of their maximum. v(i) is a subset's maximum in C(i-1, k-1) of
  them, so

      E_k[max] = sum_{i >= k} C(i-1, k-1) / C(N, k) v(i),    k <= N,

  unbiased for the expected best of k trials drawn like these, and nothing beyond k = N (the
  trials that ran cannot say what more would find);
- with replacement (Dodge et al. 2019, "Show Your Work"): k draws from the N trials' empirical
  distribution, P(max <= v(i)) = (i/N)^k, so E_k[max] = sum_i v(i) [(i/N)^k - ((i-1)/N)^k].
  Draws repeat trials, so it is biased low (for a maximum) and flattens towards v(N) as k grows
  past N instead of saying nothing.

The curves and ``budget_curves.csv``'s ``expected_best`` are the unbiased one (right on average
where it is defined, silent where the trials cannot tell); Dodge's is kept beside it
(``expected_best_dodge``) for comparison with published curves. For a loss the best is
the minimum: the same formulas on the negated values. Both treat the trials as independent draws; a
TPE study's later trials depend on its earlier ones (the sampler learns), so for TPE they describe
"k trials drawn like these", not "the first k trials" (the best-so-far curve, in the order the
trials ran, shows that one).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from optsweep.contract import DEFAULT_SELECT, maximize

CAVEAT = ("Expected best of k trials: the mean best of every subset of k of the study's N trials "
          "(without replacement, unbiased: Tang et al. 2020), for k up to N only; "
          "budget_curves.csv also holds Dodge et al. 2019's with-replacement estimate "
          "(expected_best_dodge), biased low, for every k. A diverged trial counts at chance "
          "(a loss at ln(classes)). A TPE study's trials are not independent draws (each depends "
          "on the ones before), so read it as the value k trials like these would reach; the "
          "best-so-far curve is the study's own, in trial order.")


def _signed_ascending(values: Sequence[float], metric: str) -> tuple[np.ndarray, float]:
    """(the values signed so that the best is the largest, sorted ascending; the sign)."""
    sign = 1.0 if maximize(metric) else -1.0
    return np.sort(sign * np.asarray(values, dtype=float)), sign


def expected_best(values: Sequence[float], k: int, metric: str = DEFAULT_SELECT) -> float:
    """Tang et al.'s unbiased expected maximum (minimum for a loss ``metric``) of k trials drawn
    without replacement from ``values``; nan for k > len(values) (no extrapolation) or k < 1."""
    ordered, sign = _signed_ascending(values, metric)
    n = len(ordered)
    if not 1 <= k <= n:
        return float("nan")
    # exact integers divided once: C(N, k) overflows a float past N ~ 1000
    weights = [math.comb(i - 1, k - 1) / math.comb(n, k) for i in range(k, n + 1)]
    return float(sign * np.dot(weights, ordered[k - 1:]))


def expected_best_dodge(values: Sequence[float], k: int, metric: str = DEFAULT_SELECT) -> float:
    """Dodge et al.'s expected maximum (minimum for a loss ``metric``) of k draws with
    replacement from ``values`` (biased low for a maximum; defined for every k)."""
    ordered, sign = _signed_ascending(values, metric)
    n = len(ordered)
    if n == 0 or k < 1:
        return float("nan")
    i = np.arange(1, n + 1)
    weights = (i / n) ** k - ((i - 1) / n) ** k
    return float(sign * np.sum(ordered * weights))


def best_so_far(values: Sequence[float], metric: str = DEFAULT_SELECT) -> list[float]:
    """The best value among the first 1, 2, ... trials, in the order given."""
    v = np.asarray(values, dtype=float)
    running = np.maximum.accumulate(v) if maximize(metric) else np.minimum.accumulate(v)
    return running.tolist()


def budget_curves(trials: pd.DataFrame, metric: str, budget: int | None = None) -> pd.DataFrame:
    """One row per (workload, optimizer, k), k = 1 .. budget (default the trial count):
    expected_best (unbiased; nan past the trials that gave a value), expected_best_dodge (with
    replacement, every k) and best_so_far (k up to the trials that ran), from ``trials`` (columns
    workload, optimizer, trial, value: one row per trial that gave a value)."""
    rows = []
    for (workload, optimizer), group in trials.groupby(["workload", "optimizer"], sort=False):
        ordered = group.sort_values("trial")["value"].to_numpy(dtype=float)
        running = best_so_far(ordered, metric)
        for k in range(1, (budget or len(ordered)) + 1):
            rows.append({"workload": workload, "optimizer": optimizer, "k": k, "metric": metric,
                         "trials": len(ordered), "expected_best": expected_best(ordered, k, metric),
                         "expected_best_dodge": expected_best_dodge(ordered, k, metric),
                         "best_so_far": running[k - 1] if k <= len(running) else np.nan})
    return pd.DataFrame(rows, columns=["workload", "optimizer", "k", "metric", "trials",
                                       "expected_best", "expected_best_dodge", "best_so_far"])
