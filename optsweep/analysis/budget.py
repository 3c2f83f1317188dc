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
(``expected_best_dodge``) for comparison with published curves.

The band (``band_low``, ``band_high``) is a jackknife interval: the estimate recomputed N times,
each time without one trial, gives its standard error, and the estimate +- t(N-1) x that error is
a nominal 95% interval. It is drawn only for k <= N / BAND_SHARE: its coverage of the true expected
best, measured over 600 simulated studies of random search per cell (``benchmarks/budget_bands.py``,
a normal and the simulated workload's trial distribution, N = 10, 20, 40, 80), is at least 0.90 in
every cell there and falls to 0.69 as k nears N, where the best of k is the best of nearly all the
trials and no resampling of those trials can say how far the next one would go (a percentile
bootstrap covers less: at least 0.84 where the band is drawn, 0.65 to 0.89 at k = N / 2).

For a loss the best is
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
from scipy import stats

from optsweep.contract import DEFAULT_SELECT, maximize

BAND_SHARE = 5  # the band is drawn for k <= N / BAND_SHARE (module docstring: its coverage)
BAND_LEVEL = 0.95

CAVEAT = ("Expected best of k trials: the mean best of every subset of k of the study's N trials "
          "(without replacement, unbiased: Tang et al. 2020), for k up to N only; "
          "budget_curves.csv also holds Dodge et al. 2019's with-replacement estimate "
          "(expected_best_dodge), biased low, for every k. The band is a jackknife 95% interval, "
          f"drawn for k up to N/{BAND_SHARE} only (where its coverage was measured at 0.90 or "
          "more; beyond, resampling the trials cannot tell). A diverged trial counts at chance "
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


def band_limit(n: int) -> int:
    """The largest k whose band is drawn for N = ``n`` trials (0: none, fewer than 2 trials)."""
    return max(1, n // BAND_SHARE) if n >= 2 else 0


def expected_best_band(values: Sequence[float], k: int, metric: str = DEFAULT_SELECT,
                       level: float = BAND_LEVEL) -> tuple[float, float]:
    """(low, high): the jackknife interval of ``expected_best(values, k)``; (nan, nan) for k beyond
    ``band_limit`` (see the module docstring for its measured coverage)."""
    if not 1 <= k <= band_limit(len(values)):
        return float("nan"), float("nan")
    return jackknife_band(values, k, metric, level)


def jackknife_band(values: Sequence[float], k: int, metric: str = DEFAULT_SELECT,
                   level: float = BAND_LEVEL) -> tuple[float, float]:
    """The jackknife interval of ``expected_best(values, k)`` for any k < N, where it is valid or
    not (``expected_best_band`` keeps it to where its coverage was measured to hold)."""
    n = len(values)
    v = np.asarray(values, dtype=float)
    left_out = np.array([expected_best(np.delete(v, i), k, metric) for i in range(n)])
    se = math.sqrt((n - 1) / n * float(np.sum((left_out - left_out.mean()) ** 2)))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    centre = expected_best(v, k, metric)
    return centre - half, centre + half


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
    expected_best (unbiased; nan past the trials that gave a value), its band (band_low,
    band_high: nan past ``band_limit``), expected_best_dodge (with replacement, every k) and
    best_so_far (k up to the trials that ran), from ``trials`` (columns workload, optimizer,
    trial, value: one row per trial that gave a value)."""
    rows = []
    for (workload, optimizer), group in trials.groupby(["workload", "optimizer"], sort=False):
        ordered = group.sort_values("trial")["value"].to_numpy(dtype=float)
        running = best_so_far(ordered, metric)
        for k in range(1, (budget or len(ordered)) + 1):
            low, high = expected_best_band(ordered, k, metric)
            rows.append({"workload": workload, "optimizer": optimizer, "k": k, "metric": metric,
                         "trials": len(ordered), "expected_best": expected_best(ordered, k, metric),
                         "band_low": low, "band_high": high,
                         "expected_best_dodge": expected_best_dodge(ordered, k, metric),
                         "best_so_far": running[k - 1] if k <= len(running) else np.nan})
    return pd.DataFrame(rows, columns=["workload", "optimizer", "k", "metric", "trials",
                                       "expected_best", "band_low", "band_high",
                                       "expected_best_dodge", "best_so_far"])
