"""Winner stability: how often each optimizer would come first if the confirmation seeds were
drawn again.

The verdicts (``stats.compare_to_best``) say whether the named best beats each other optimizer
beyond seed noise. A reader also asks the plainer question: with other seeds, would the same
optimizer come first on the reported metric? Here the confirmation seeds of a workload are
resampled with replacement (a bootstrap over seeds), the same resampled seeds for every optimizer
(every optimizer is confirmed on the same seeds, and a seed's effect is shared: resampling each
optimizer's runs apart would break that pairing), and in each resample the optimizer with the best
mean over its runs at those seeds wins; ties share the win. The share of resamples each wins is its
stability. A diverged run counts at chance, as in the tables.

It is a description of the seeds that ran, not a test: with 2 or 3 seeds a bootstrap has few
distinct resamples (3 seeds: 10), so the shares move in coarse steps; the verdicts are the test.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from optsweep.analysis.sweeps import SEED
from optsweep.analysis.tables import lower_is_better
from optsweep.contract import AVERAGED

RESAMPLES = 2000
FIGURE_CAPTION = ("Winner stability: the share of {resamples:,} resamples of the confirmation "
                  "seeds (with replacement, the same seeds for every optimizer) in which each "
                  "optimizer has the best mean {metric}; ties share the win.")


def seed_table(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One workload's confirmation runs as seeds x optimizers of the final ``metric`` (nan where
    an optimizer has no counted run at that seed)."""
    counted = runs[runs["status"].isin(AVERAGED)]
    return counted.pivot_table(index=SEED, columns="optimizer", values=f"final_{metric}",
                               aggfunc="mean", sort=False)


def win_shares(table: pd.DataFrame, lower: bool = False, resamples: int = RESAMPLES,
               seed: int = 0) -> pd.Series:
    """The share of bootstrap resamples of ``table``'s rows (seeds) in which each column
    (optimizer) has the best mean; ties split the win equally. A resample in which an optimizer
    has none of its seeds leaves it out of that resample."""
    values = table.to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(values), size=(resamples, len(values)))
    drawn = values[picks]  # resamples x seeds x optimizers
    counts = np.sum(~np.isnan(drawn), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.nansum(drawn, axis=1) / counts
    means = np.where(counts > 0, means, np.inf if lower else -np.inf)
    best = means.min(axis=1, keepdims=True) if lower else means.max(axis=1, keepdims=True)
    winners = means == best
    shares = (winners / winners.sum(axis=1, keepdims=True)).mean(axis=0)
    return pd.Series(shares, index=table.columns, name="share")


def winner_stability(confirmed: pd.DataFrame, metric: str, resamples: int = RESAMPLES,
                     seed: int = 0) -> pd.DataFrame:
    """One row per workload x optimizer: seeds (its counted confirmation runs) and share (of the
    resamples it wins, ``win_shares``), from the benchmark's confirmation runs (columns
    workload, optimizer, status, trainer.seed, final_<metric>)."""
    rows = []
    for workload, runs in confirmed.groupby("workload", sort=False):
        table = seed_table(runs, metric)
        if table.empty:
            continue
        shares = win_shares(table, lower_is_better(metric), resamples, seed)
        for optimizer, share in shares.items():
            rows.append({"workload": workload, "optimizer": optimizer,
                         "seeds": int(table[optimizer].notna().sum()), "share": float(share)})
    return pd.DataFrame(rows, columns=["workload", "optimizer", "seeds", "share"])


def stability_lines(stability: pd.DataFrame, metric: str) -> list[str]:
    """One sentence per workload: who wins how often over resampled seeds."""
    lines = []
    for workload, rows in stability.groupby("workload", sort=False):
        rows = rows.sort_values("share", ascending=False, kind="stable")
        shown = ", ".join(f"{r.optimizer} {r.share:.0%}" for r in rows.itertuples()
                          if r.share >= 0.005)
        seeds = int(rows["seeds"].max())
        lines.append(f"On {workload}, with its {seeds} confirmation seeds drawn again "
                     f"({RESAMPLES:,} resamples), the best mean {metric} goes to: {shown}"
                     f"{' (few seeds: coarse shares)' if seeds <= 3 else ''}.")
    return lines

