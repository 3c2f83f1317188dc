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
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from optsweep.analysis.targets import first_reaching

TAU_MAX = 4.0  # AlgoPerf integrates the profile from 1 to 4
MEASURES = ("epochs", "seconds")


def run_time_to_target(values: Sequence[float], seconds: Sequence[float], target: float,
                       metric: str) -> tuple[float, float]:
    """(epochs, seconds) until one run's curve reaches ``target``; (inf, inf) when it never does."""
    hit = first_reaching(values, seconds, target, metric)
    return (float(hit[0]), float(hit[1])) if hit else (math.inf, math.inf)


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
