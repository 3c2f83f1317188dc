"""Is the best setting really better? Welch's t-test of final metrics over seeds, Holm-corrected.

Welch's test (unequal variances) because settings differ in spread: a large lr is often both worse
and noisier than a good one. The best setting of a sweep is tested against every other one, so a
sweep of k+1 settings makes k comparisons: the verdicts use Holm's step-down adjustment for those k
(the chance of any false "beyond noise" in the sweep stays at most alpha), and significance.csv
keeps the raw p-value beside the adjusted one. A verdict is signed (``Verdict``): a setting can be
better than the best beyond noise, when the best was chosen on another metric (validation) than the
one compared (test).
"""
from __future__ import annotations

import math
from enum import Enum
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from optsweep.analysis.load import RunSet
from optsweep.analysis.tables import best_settings, lower_is_better, setting_table
from optsweep.contract import AVERAGED, DEFAULT_REPORTED

ALPHA = 0.05


class Verdict(str, Enum):
    """A setting against the best, on the compared metric: the one vocabulary of every table."""

    BEST = "best"
    BETTER = "better beyond noise"  # than the best: it was chosen on another metric
    WORSE = "worse beyond noise"
    TIED = "within noise"
    UNTESTED = "not tested"

    def __str__(self) -> str:
        return self.value


BEYOND_NOISE = (Verdict.BETTER, Verdict.WORSE)


def welch(a, b) -> float:
    """Two-sided p-value of Welch's t-test; nan where it is undefined."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def holm(p_values) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given; nan stays nan and is not counted.

    Sorted ascending, the i-th smallest of k p-values (i from 0) becomes (k - i) * p, capped at 1
    and never below the adjusted value before it (the adjusted values keep the raw order)."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def judge(p: float, n_best: int, n_other: int, difference: float, alpha: float = ALPHA,
          lower: bool = False) -> Verdict:
    """The signed verdict on ``difference`` (setting - best) with its (adjusted) p-value ``p``;
    ``lower``: lower is better on the compared metric (a loss)."""
    if n_best < 2 or n_other < 2:
        return Verdict.UNTESTED
    if math.isnan(p):  # both settings gave identical numbers on every seed
        return Verdict.TIED if difference == 0 else Verdict.UNTESTED
    if p >= alpha:
        return Verdict.TIED
    return Verdict.BETTER if (difference < 0) == lower else Verdict.WORSE


def verdict(p: float, n_best: int, n_other: int, difference: float, alpha: float = ALPHA,
            p_name: str = "p", lower: bool = False) -> str:
    """``judge``'s verdict in words: 'worse beyond noise (Holm p=0.01)', 'within noise (p=0.3)';
    ``p_name`` says which p (e.g. 'Holm p')."""
    return in_words(judge(p, n_best, n_other, difference, alpha, lower), p, n_best, n_other,
                    p_name)


def in_words(said: Verdict, p: float, n_best: int, n_other: int, p_name: str = "p") -> str:
    """A verdict ``judge`` gave, in words with its ``p`` (or why it was not tested)."""
    if said is Verdict.UNTESTED:
        return (f"{said} (needs 2 or more seeds in both settings)" if min(n_best, n_other) < 2
                else f"{said} (no spread over seeds)")
    return str(said) if math.isnan(p) else f"{said} ({p_name}={p:.3g})"


def compare_to_best(runset: RunSet, metric: str = DEFAULT_REPORTED, alpha: float = ALPHA,
                    table: pd.DataFrame | None = None, select: str | None = None,
                    best: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The best setting of each (sweep, dataset) by ``select`` (default: ``metric``) against every
    other setting there, compared on ``metric``. ``best`` (sweep: setting) names the best instead,
    chosen on other runs than these: chosen on these runs' ``select``, which shares each run's seed
    effect with ``metric``, the best's ``metric`` is biased up and the verdicts against it are
    anti-conservative (benchmarks/calibration.py measured it).

    Columns: sweep, dataset, best, setting, n_best, n, best_mean, mean, difference (setting - best),
    p_value (Welch's, raw), comparisons (k: the tested comparisons of this sweep and dataset),
    p_adjusted (Holm over those k), significant (p_adjusted < alpha), outcome (``Verdict``, signed,
    on p_adjusted) and verdict (the outcome in words, with its p).
    """
    table = setting_table(runset, metric, select) if table is None else table
    samples = setting_samples(runset.runs, metric)
    rows = []
    chosen = (best_settings(table, select or metric) if best is None else
              table[[best.get(sweep) == setting for sweep, setting in
                     zip(table["sweep"], table["setting"])]])
    for top in chosen.itertuples(index=False):
        best_values = samples.get((top.sweep, top.dataset, top.setting), [])
        others = table[(table["sweep"] == top.sweep) & (table["dataset"] == top.dataset)
                       & (table["setting"] != top.setting)]
        for other in others.itertuples(index=False):
            other_values = samples.get((other.sweep, other.dataset, other.setting), [])
            diff = float(getattr(other, f"{metric}_mean") - getattr(top, f"{metric}_mean"))
            rows.append({
                "sweep": top.sweep, "dataset": top.dataset, "best": top.setting,
                "setting": other.setting, "n_best": len(best_values), "n": len(other_values),
                "best_mean": getattr(top, f"{metric}_mean"),
                "mean": getattr(other, f"{metric}_mean"),
                "difference": diff, "p_value": welch(best_values, other_values),
            })
    return pd.DataFrame(holm_verdicts(rows, alpha, lower_is_better(metric)), columns=COLUMNS)


def setting_samples(runs: pd.DataFrame, metric: str) -> dict[tuple, np.ndarray]:
    """{(sweep, dataset, setting): its counted runs' final ``metric`` values}: a setting's samples
    over seeds, as the tests and the power statement read them (``contract.AVERAGED`` runs; a run
    without a final value left out)."""
    counted = runs[runs["status"].isin(AVERAGED)]
    values = counted.groupby(["sweep", "dataset", "setting"], dropna=False)[f"final_{metric}"]
    return {key: v.dropna().to_numpy() for key, v in values}


COLUMNS = ["sweep", "dataset", "best", "setting", "n_best", "n", "best_mean", "mean", "difference",
           "p_value", "comparisons", "p_adjusted", "significant", "outcome", "verdict"]


def holm_verdicts(rows: list[dict], alpha: float = ALPHA, lower: bool = False) -> list[dict]:
    """Each comparison (a dict with sweep, dataset, n_best, n, difference and its raw p_value)
    with comparisons, p_adjusted (Holm within its sweep and dataset), significant, outcome and
    verdict; ``lower``: lower is better on the compared metric."""
    families: dict[tuple, list[dict]] = {}
    for row in rows:
        families.setdefault((row["sweep"], row["dataset"]), []).append(row)
    for family in families.values():
        raw = [row["p_value"] for row in family]
        for row, p in zip(family, holm(raw)):
            row["comparisons"] = sum(not math.isnan(q) for q in raw)
            row["p_adjusted"] = p
            row["significant"] = bool(p < alpha)
            said = judge(p, row["n_best"], row["n"], row["difference"], alpha, lower)
            row["outcome"] = str(said)
            row["verdict"] = in_words(said, p, row["n_best"], row["n"],
                                      "Holm p" if row["comparisons"] > 1 else "p")
    return rows


def describe_difference(row, metric: str) -> str:
    """'0.1000 lower' style wording that respects whether higher or lower is better."""
    if pd.isna(row["difference"]):
        return "no final value"
    worse = "higher" if lower_is_better(metric) else "lower"
    return f"{abs(row['difference']):.4f} {worse}" if row["difference"] else "equal"


# --- the power statement: what difference the confirmation seeds could have detected -----------

def pooled_sd(groups) -> tuple[float, int]:
    """(the seed spread pooled over groups, its degrees of freedom): sqrt(sum of each group's
    squared deviations from its own mean / sum of (n_i - 1)); K groups of n seeds give K x (n - 1)
    degrees of freedom, so that 2 or 3 seeds per optimizer still estimate it. A group of fewer
    than 2 values carries no spread and counts for nothing; (nan, 0) when none has 2."""
    squares, df = 0.0, 0
    for group in groups:
        values = [float(v) for v in group if not math.isnan(float(v))]
        if len(values) < 2:
            continue
        mean = sum(values) / len(values)
        squares += sum((v - mean) ** 2 for v in values)
        df += len(values) - 1
    return (math.sqrt(squares / df), df) if df else (math.nan, 0)


def t_test_power(difference: float, sd: float, n: int, alpha: float,
                 df: float | None = None) -> float:
    """Power of a two-sided t-test of two means of ``n`` values each, spread ``sd``, whose true
    means differ by ``difference``: P(|T| > t_(1 - alpha/2, df)) with T noncentral t of
    noncentrality difference / (sd sqrt(2 / n)). ``df``: the test statistic's degrees of freedom;
    None: 2 (n - 1), Welch's (the benchmark's test) at equal spreads."""
    df = 2 * (n - 1) if df is None else df
    if n < 2 or df < 1 or not sd > 0:
        return math.nan
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = abs(difference) / (sd * math.sqrt(2.0 / n))
    return float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))


def detectable_difference(sd: float, df: float | None, n: int, alpha: float,
                          power: float = 0.8) -> float:
    """The smallest true difference between two means of ``n`` seeds each that a two-sided t-test
    at ``alpha`` detects with ``power`` (noncentral t, ``t_test_power``). Pass the alpha the
    verdict is held to: with Holm over k comparisons the first step's alpha / k (a bound: later
    steps test at larger alphas). nan where n < 2 or no spread was measured."""
    if n < 2 or not sd > 0 or not 0 < power < 1:
        return math.nan
    low, high = 0.0, sd
    while t_test_power(high, sd, n, alpha, df) < power:
        high *= 2.0
    for _ in range(60):  # bisection: 2^-60 of the bracket, far below any printed digit
        middle = (low + high) / 2
        low, high = (middle, high) if t_test_power(middle, sd, n, alpha, df) < power \
            else (low, middle)
    return high


def seeds_needed(difference: float, sd: float, df: float | None, alpha: float,
                 power: float = 0.8, max_seeds: int = 1000) -> int | None:
    """The smallest n per optimizer (2 or more) at which ``difference`` is detected with
    ``power`` (``t_test_power``; ``df`` None: 2 (n - 1) for each n); None beyond ``max_seeds``."""
    if not sd > 0 or difference == 0:
        return None
    for n in range(2, max_seeds + 1):
        if t_test_power(difference, sd, n, alpha, df) >= power:
            return n
    return None
