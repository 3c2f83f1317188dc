"""Performance profiles: one score per optimizer across workloads (Dolan and More 2002, AlgoPerf).

A mean over workloads would let one easy workload decide. A profile instead asks, per optimizer,
on what fraction of the workloads it was within a factor tau of the fastest optimizer there. The
time of an optimizer on a workload is the median, over its confirmation runs, of the time its
validation curve takes to reach the workload's target (``workload.target``): epochs, and wall
seconds (cumulative epoch_seconds). A run that never reaches the target takes infinitely long, and
so does an optimizer whose median run never does; on a workload that no optimizer reaches, every
ratio is infinite. The ratio to the fastest is r >= 1; the profile rho(tau) is the fraction of
workloads with r <= tau, and its area from tau = 1 to 4, divided by 3, is a score in [0, 1]
(AlgoPerf's): 1 when the optimizer is fastest everywhere, 0 when it is never within 4x.

A score's interval (``score_intervals``) resamples each workload's confirmation seeds with
replacement (the same seeds for every optimizer, as they ran), recomputes every median time and
the scores, and takes the middle 95% of the resampled scores (a percentile bootstrap). It is given
from MIN_SEEDS seeds per optimizer and workload: with fewer, a median of resampled seeds takes
only a handful of values and the interval says more about the resampling than about the seeds.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from optsweep.analysis.targets import first_reaching

TAU_MAX = 4.0  # AlgoPerf integrates the profile from 1 to 4
MEASURES = ("epochs", "seconds")  # what the scores rank by
# also reported to the target, not scored: optimizer steps, forward-backward passes, and seconds
# with evaluation (``contract.METRIC_COLUMNS``: epoch_seconds is the training pass alone)
SPENT = {"steps": ("train_steps",), "passes": ("train_passes",),
         "seconds_with_eval": ("epoch_seconds", "eval_seconds")}
MIN_SEEDS = 5  # seeds per optimizer and workload from which a score's interval is given
RESAMPLES = 1000
LEVEL = 0.95


def run_time_to_target(values: Sequence[float], seconds: Sequence[float], target: float,
                       metric: str) -> tuple[float, float]:
    """(epochs, seconds) until one run's curve reaches ``target``; (inf, inf) when it never does."""
    hit = first_reaching(values, seconds, target, metric)
    return (float(hit[0]), float(hit[1])) if hit else (math.inf, math.inf)


def spent_until(per_epoch: Sequence[float], epochs: float) -> float:
    """What the first ``epochs`` epochs spent in all (steps, passes, seconds): inf when the
    target was never reached, nan when a reaching epoch did not record it."""
    if not math.isfinite(epochs):
        return math.inf
    return float(np.sum(np.asarray(per_epoch[:int(epochs)], dtype=float)))


def median_time(times: Sequence[float]) -> float:
    """The median of run times where inf means never (numpy's median orders inf last)."""
    return float(np.median(np.asarray(times, dtype=float))) if len(times) else math.inf


def ratios(times: pd.DataFrame, measure: str) -> pd.Series:
    """Each row's ``measure`` divided by the fastest of its workload (inf where it, or every
    optimizer there, never reached the target)."""
    fastest = times.groupby("workload")[measure].transform("min")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = times[measure] / fastest
    return ratio.where(np.isfinite(fastest), math.inf).fillna(math.inf)


def profile_curve(ratio: Sequence[float], taus: Sequence[float]) -> list[float]:
    """rho(tau): the fraction of workloads whose ratio is at most tau, for each tau."""
    r = np.asarray(ratio, dtype=float)
    return [float(np.mean(r <= tau)) if len(r) else math.nan for tau in taus]


def profile_area(ratio: Sequence[float], tau_max: float = TAU_MAX) -> float:
    """The area under rho from tau = 1 to ``tau_max``, normalised to [0, 1]. rho is a step
    function, so the area is exact: each workload adds (tau_max - r) / (tau_max - 1) when its
    ratio r is at most tau_max, divided by the number of workloads."""
    r = np.asarray(ratio, dtype=float)
    if not len(r):
        return math.nan
    return float(np.mean(np.clip(tau_max - r, 0.0, None) / (tau_max - 1.0)))


def performance_profile(times: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From ``times`` (workload, optimizer, epochs, seconds: the median time to target), the table
    with ratio_epochs and ratio_seconds added, and one score row per optimizer (area_epochs,
    area_seconds, workloads)."""
    table = times.copy()
    for measure in MEASURES:
        table[f"ratio_{measure}"] = ratios(table, measure) if len(table) else []
    scores = [{"optimizer": optimizer, "workloads": len(group),
               **{f"area_{m}": profile_area(group[f"ratio_{m}"]) for m in MEASURES}}
              for optimizer, group in table.groupby("optimizer", sort=False)]
    scores = pd.DataFrame(scores, columns=["optimizer", "workloads",
                                           *(f"area_{m}" for m in MEASURES)])
    return table, scores.sort_values("area_epochs", ascending=False, kind="stable")


def _areas(medians: np.ndarray, tau_max: float = TAU_MAX) -> np.ndarray:
    """``profile_area`` of every optimizer at once: ``medians`` is (..., workloads, optimizers) of
    median times (nan: no run there, never); returns (..., optimizers). A workload that no
    optimizer reached adds 0."""
    medians = np.where(np.isnan(medians), np.inf, medians)
    fastest = np.min(medians, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.isfinite(fastest), medians / fastest, np.inf)
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    return np.mean(np.clip(tau_max - ratio, 0.0, None) / (tau_max - 1.0), axis=-2)


def score_intervals(runs: pd.DataFrame, seed_column: str = "trainer.seed",
                    resamples: int = RESAMPLES, level: float = LEVEL,
                    seed: int = 0) -> pd.DataFrame:
    """Per optimizer: area_<measure>_low and _high, the percentile bootstrap interval of its
    score over resampled seeds (module docstring), from ``runs`` (one row per confirmation run:
    workload, optimizer, ``seed_column``, epochs, seconds); nan where an optimizer has fewer than
    MIN_SEEDS runs on some workload (then no resampling is done for it)."""
    optimizers = list(dict.fromkeys(runs["optimizer"]))
    rows = {o: {"optimizer": o} for o in optimizers}
    counts = runs.pivot_table(index="workload", columns="optimizer", values=seed_column,
                              aggfunc="count").reindex(columns=optimizers)
    valid = (counts.fillna(0) >= MIN_SEEDS).all(axis=0)
    rng = np.random.default_rng(seed)
    for m in MEASURES:
        medians = []
        if valid.any():
            for _, group in runs.groupby("workload", sort=False):
                table = group.pivot_table(index=seed_column, columns="optimizer", values=m,
                                          aggfunc="first").reindex(columns=optimizers)
                values = table.to_numpy(dtype=float)  # seeds x optimizers; nan: not run
                picks = rng.integers(len(values), size=(resamples, len(values)))
                with warnings.catch_warnings():  # an optimizer without a run here: nan median
                    warnings.simplefilter("ignore", RuntimeWarning)
                    medians.append(np.nanmedian(values[picks], axis=1))  # resamples x optimizers
        areas = _areas(np.stack(medians, axis=1)) if medians else None
        for j, o in enumerate(optimizers):
            low, high = (np.percentile(areas[:, j], [50 * (1 - level), 50 * (1 + level)])
                         if valid[o] else (np.nan, np.nan))
            rows[o][f"area_{m}_low"], rows[o][f"area_{m}_high"] = float(low), float(high)
    return pd.DataFrame(list(rows.values()), columns=[
        "optimizer", *(f"area_{m}_{end}" for m in MEASURES for end in ("low", "high"))])
