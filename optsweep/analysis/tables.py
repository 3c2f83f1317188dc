"""Per-setting summary tables (mean, 95% interval, std and n over seeds) and a dependency-free
Markdown writer."""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from scipy import stats

from optsweep.analysis.load import STATUSES, RunSet
from optsweep.analysis.sweeps import SEED, order_sweeps, readable, setting_order
from optsweep.contract import AVERAGED, DEFAULT_REPORTED, SCORED, Status, maximize

KEYS = ["sweep", "dataset", "optimizer", "setting"]
REPORTED = (DEFAULT_REPORTED, "test_acc5")


def lower_is_better(metric: str) -> bool:
    """The analysis ranks as the run contract directs (losses down, accuracies up)."""
    return not maximize(metric)


def selection_metric(runset: RunSet, select: str | None, metric: str) -> str:
    """The metric that picks the best setting: ``select`` (a validation metric, so that settings
    are never chosen on the test set) where the runs have it, else ``metric``."""
    column = f"final_{select}" if select else None
    if column and column in runset.runs.columns and runset.runs[column].notna().any():
        return select
    return metric


def setting_table(runset: RunSet, metric: str = DEFAULT_REPORTED,
                  select: str | None = None) -> pd.DataFrame:
    """One row per (sweep, dataset, optimizer, setting): final metrics over the runs that count.

    Columns: the keys, n (runs with a final `metric`), <m>_mean, <m>_ci95 (half-width of the 95%
    t-interval of the mean; nan below 2 runs), <m>_std and <m>_n for test_acc1, test_acc5, `metric`
    and `select`, best_val_epoch (mean), wall_s (mean), runs (all), and one count per status.
    """
    runs = runset.runs
    counted = runs[runs["status"].isin(AVERAGED)]
    grouped = counted.groupby(KEYS, dropna=False, sort=False)
    table = grouped[f"final_{metric}"].count().rename("n").to_frame()
    for m in dict.fromkeys([*REPORTED, metric, *([select] if select else [])]):
        values = grouped[f"final_{m}"]
        table[f"{m}_mean"], table[f"{m}_std"] = values.mean(), values.std(ddof=1)
        table[f"{m}_n"] = values.count()
        table[f"{m}_ci95"] = [ci95_half(std, n) for std, n in
                              zip(table[f"{m}_std"], table[f"{m}_n"])]
    table["best_val_epoch"] = grouped["best_epoch"].mean()
    table["wall_s"] = grouped["wall_seconds"].mean()
    counts = runs.groupby([*KEYS, "status"], dropna=False).size().unstack("status", fill_value=0)
    counts = counts.reindex(columns=list(STATUSES), fill_value=0)
    counts.insert(0, "runs", counts.sum(axis=1))
    table = counts.join(table, how="left")
    table["n"] = table["n"].fillna(0).astype(int)
    table = table[[c for c in table.columns if c not in ("runs", *STATUSES)] + ["runs", *STATUSES]]
    return _in_study_order(table.reset_index(), runset)


def _in_study_order(table: pd.DataFrame, runset: RunSet) -> pd.DataFrame:
    sweep_rank = {s: i for i, s in enumerate(order_sweeps(runset.runs, runset.swept))}
    setting_rank = {}
    for sweep, runs in runset.runs.groupby("sweep", sort=False):
        for i, setting in enumerate(setting_order(runs, runset.swept[sweep])):
            setting_rank[(sweep, setting)] = i
    key = table.apply(lambda r: (sweep_rank[r["sweep"]], str(r["dataset"]),
                                 setting_rank.get((r["sweep"], r["setting"]), 0)), axis=1)
    return table.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)


def choosable(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs a setting is chosen on: those the sweeper scored (``contract.SCORED``), of the
    settings that diverged on no seed (the sweeper scored that seed at the worst value)."""
    setting = pd.Series([repr(key) for key in runs[["sweep", "dataset", "setting"]]
                         .astype(object).itertuples(index=False)], index=runs.index, dtype=object)
    diverged = setting[runs["status"] == Status.DIVERGED]
    return runs[runs["status"].isin(SCORED) & ~setting.isin(diverged)]


def best_settings(table: pd.DataFrame, metric: str = DEFAULT_REPORTED) -> pd.DataFrame:
    """The best setting of each (sweep, dataset) by mean `metric` (highest, or lowest for a
    loss)."""
    scored = table[table[f"{metric}_mean"].notna()]
    if scored.empty:
        return scored
    means = scored.groupby(["sweep", "dataset"], sort=False, dropna=False)[f"{metric}_mean"]
    pick = means.idxmin() if lower_is_better(metric) else means.idxmax()
    return scored.loc[pick.to_numpy()].reset_index(drop=True)


CHOSEN_VALUE = "chosen_value"  # chosen_runs' column: the chosen setting's mean select value


def chosen_runs(runset: RunSet, select: str, metric: str = DEFAULT_REPORTED) -> pd.DataFrame:
    """The run each (sweep, dataset) would confirm: of its best setting by mean ``select``
    (``best_settings``, among the runs a setting is chosen on: ``choosable``), the run of the
    lowest seed; a runs row each, with ``CHOSEN_VALUE``, that setting's mean ``select``. The one
    rule by which ``optsweep.confirm`` picks the setting it reruns and the benchmark names its
    best: none for a sweep without a choosable run."""
    counted = choosable(runset.runs)
    if counted.empty or f"final_{select}" not in counted.columns:
        return counted.assign(**{CHOSEN_VALUE: pd.Series(dtype=float)})
    sweeps = set(counted["sweep"])
    scored = RunSet(runs=counted, metrics=runset.metrics,
                    swept={s: keys for s, keys in runset.swept.items() if s in sweeps})
    rows = []
    for pick in best_settings(setting_table(scored, metric, select), select).itertuples(
            index=False):
        mine = counted[(counted["sweep"] == pick.sweep) & (counted["setting"] == pick.setting)
                       & (counted["dataset"].astype(str) == str(pick.dataset))]
        first = mine.sort_values(SEED if SEED in mine.columns else "run").iloc[0]
        rows.append({**first.to_dict(), CHOSEN_VALUE: getattr(pick, f"{select}_mean")})
    return pd.DataFrame(rows, columns=[*counted.columns, CHOSEN_VALUE])


@functools.lru_cache(maxsize=None)
def t975(dof: int) -> float:
    return float(stats.t.ppf(0.975, dof))  # ~0.1 ms a call; a figure asks hundreds of times


def ci95_half(std: float, n: int) -> float:
    """Half-width of the 95% Student-t interval of a mean over ``n`` values of spread ``std``
    (sample standard deviation); nan where fewer than 2 values give no interval."""
    if n is None or pd.isna(n) or n < 2 or std is None or pd.isna(std):
        return math.nan
    return t975(int(n) - 1) * float(std) / math.sqrt(n)


def mean_std(mean: float, std: float, n: int) -> str:
    """'0.9100 ± 0.0248 (95% CI; sd 0.0100, n=3)': the mean, the half-width of its 95%
    t-interval, the spread over seeds and their count; a single run shows '0.9100 (n=1)'."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or math.isnan(std) or n < 2:
        return f"{mean:.4f} (n={n})"
    return f"{mean:.4f} ± {ci95_half(std, n):.4f} (95% CI; sd {std:.4f}, n={n})"


def display_table(table: pd.DataFrame, metric: str = DEFAULT_REPORTED) -> pd.DataFrame:
    """The setting table as people read it: mean ± 95% interval (sd, n) strings, status counts in
    one cell."""
    shown = pd.DataFrame({"sweep": table["sweep"], "dataset": table["dataset"],
                          "setting": readable(table["setting"])})
    for m in dict.fromkeys([metric, *REPORTED]):
        shown[m] = [mean_std(a, b, int(n)) for a, b, n in
                    zip(table[f"{m}_mean"], table[f"{m}_std"], table[f"{m}_n"].fillna(0))]
    shown["best val epoch"] = table["best_val_epoch"].map(epoch_text)
    shown["wall s"] = table["wall_s"].map(lambda v: "–" if pd.isna(v) else f"{v:.1f}")
    shown["status"] = table.apply(
        lambda r: ", ".join(f"{s} {int(r[s])}" for s in STATUSES if r[s]), axis=1)
    return shown


def epoch_text(value: float) -> str:
    """A mean epoch: '4' when every seed's is the same whole epoch, '3.5' otherwise, '–' none."""
    if pd.isna(value):
        return "–"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pandas' to_markdown would need `tabulate`)."""
    def cell(value) -> str:
        if isinstance(value, float):
            text = "" if math.isnan(value) else f"{value:.4g}"
        else:
            text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |",
             "| " + " | ".join("---" for _ in frame.columns) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"
