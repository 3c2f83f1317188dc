"""The report's first screen: the optimizer comparison and each sweep's best setting against the
optimizer's default, in one table and one figure, each with Welch's verdict (stats.py).

A sweep's *default* setting is the one whose swept values are the optimizer's defaults, composed
by Hydra from its config file (`conf/optimizer/<name>.yaml`, every argument written out there, or
the same group in a folder the run's `hydra.searchpath` added); the best one is
chosen on the selection metric (validation) and compared on the reported one, as in the sections.
A sweep that crosses optimizers (the lr grid) gets one row per optimizer.
"""
from __future__ import annotations

import functools
import logging
import math
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from optsweep.analysis.figures import figure_title
from optsweep.analysis.load import RunSet
from optsweep.analysis.stats import verdict, welch
from optsweep.analysis.style import facet_grid, optimizer_colour, optimizer_rank, save
from optsweep.analysis.sweeps import order_sweeps
from optsweep.analysis.tables import ci95_half, lower_is_better, mean_std
from optsweep.conf_tree import CONFIG_NAME, conf_dir
from optsweep.config import register_configs
from optsweep.contract import AVERAGED
from optsweep.rundir import RunDir

log = logging.getLogger(__name__)

DEFAULTS_PACKAGE = "optsweep_defaults"  # where each optimizer's file is composed, out of the way

COLUMNS = ["sweep", "dataset", "kind", "optimizer", "best", "best_mean", "best_std", "best_n",
           "reference", "reference_mean", "reference_std", "reference_n", "difference", "p_value",
           "verdict"]


def optimizer_defaults(name: str, searchpath: tuple[str, ...] = ()) -> dict:
    """The optimizer's arguments as Hydra composes ``optimizer=<name>`` from optsweep's config
    tree and a run's own ``searchpath`` (RunDir.config_searchpath); {} where no folder holds it."""
    return defaults_of((name,), searchpath).get(name, {})


@functools.lru_cache(maxsize=None)
def defaults_of(names: tuple[str, ...], searchpath: tuple[str, ...] = ()) -> dict[str, dict]:
    """{name: its arguments} for each of ``names`` that the config tree and ``searchpath`` hold,
    in one composition of the app's config with each optimizer at a package of its own (a
    composition costs ~0.15 s of CPU, and a report asks for many optimizers' defaults)."""
    overrides = [f"+optimizer@{DEFAULTS_PACKAGE}.o{i}={name}" for i, name in enumerate(names)]
    if searchpath:
        quoted = ",".join("'" + entry.replace("'", "\\'") + "'" for entry in searchpath)
        overrides.append(f"hydra.searchpath=[{quoted}]")
    register_configs()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=conf_dir()):
            composed = compose(config_name=CONFIG_NAME, overrides=overrides)[DEFAULTS_PACKAGE]
    except Exception as err:
        if len(names) > 1:  # one missing or broken file: the others still get theirs
            return {n: d for name in names for n, d in defaults_of((name,), searchpath).items()}
        if not isinstance(err, MissingConfigException):  # a folder's broken YAML
            log.warning("optimizer=%s has no default to compare against: %s", names[0],
                        str(err).splitlines()[0])
        return {}
    return {name: OmegaConf.to_container(composed[f"o{i}"], resolve=True)
            for i, name in enumerate(names)}


def run_defaults(runs: pd.DataFrame) -> dict[str, dict]:
    """{optimizer: its defaults} for every optimizer of ``runs``, as its first run composed them
    (that run's searchpath), one composition per searchpath."""
    first = runs.drop_duplicates("optimizer")
    by_searchpath: dict[tuple[str, ...], list[str]] = {}
    for optimizer, run in zip(first["optimizer"], first["run"]):
        if isinstance(optimizer, str):
            by_searchpath.setdefault(RunDir(run).config_searchpath(), []).append(optimizer)
    return {name: found for searchpath, names in by_searchpath.items()
            for name, found in defaults_of(tuple(sorted(names)), searchpath).items()}


def default_setting(runs: pd.DataFrame, params: list[str], optimizer: str,
                    defaults: dict | None = None) -> str | None:
    """The setting of `optimizer` whose swept values all equal its defaults (``run_defaults``
    unless given), else None."""
    swept = [p for p in params if p != "optimizer"]
    if defaults is None:
        defaults = run_defaults(runs[runs["optimizer"] == optimizer]).get(optimizer, {})
    keys = {p: p.split(".", 1)[1] for p in swept if p.startswith("optimizer.")}
    if not swept or len(keys) < len(swept) or any(k not in defaults for k in keys.values()):
        return None
    for _, row in runs[runs["optimizer"] == optimizer].drop_duplicates("setting").iterrows():
        if all(_same(row[p], defaults[keys[p]]) for p in swept):
            return row["setting"]
    return None


def _same(value, default) -> bool:
    try:
        return math.isclose(float(value), float(default), rel_tol=1e-9, abs_tol=0.0)
    except (TypeError, ValueError):
        return str(value) == str(default)


def overview_table(runset: RunSet, table: pd.DataFrame, metric: str, select: str) -> pd.DataFrame:
    """One row per (sweep, dataset, optimizer): its best setting against its default (kind
    'default'), or in an optimizer comparison the best optimizer against each other one (kind
    'comparison'). Columns: COLUMNS."""
    counted = runset.runs[runset.runs["status"].isin(AVERAGED)]
    samples = {k: v.dropna().to_numpy() for k, v in
               counted.groupby(["sweep", "dataset", "setting"], dropna=False)[f"final_{metric}"]}
    against_defaults = [sweep for sweep, params in runset.swept.items() if params != ["optimizer"]]
    defaults = run_defaults(runset.runs[runset.runs["sweep"].isin(against_defaults)])
    rows = []
    for sweep in order_sweeps(runset.runs, runset.swept):
        params = runset.swept[sweep]
        runs = runset.runs[runset.runs["sweep"] == sweep]
        for dataset, settings in table[table["sweep"] == sweep].groupby("dataset", dropna=False,
                                                                        sort=False):
            scored = settings[settings[f"{select}_mean"].notna()]
            if params == ["optimizer"]:
                best = _best(scored, select)
                if best is not None:
                    rows += [_row(best, other, sweep, dataset, metric, samples)
                             for _, other in scored.iterrows()
                             if other["setting"] != best["setting"]]
                continue
            for optimizer in sorted(scored["optimizer"].astype(str).unique(), key=optimizer_rank):
                best = _best(scored[scored["optimizer"].astype(str) == optimizer], select)
                name = default_setting(runs, params, optimizer, defaults.get(optimizer, {}))
                reference = settings[settings["setting"] == name]
                rows.append(_row(best, reference.iloc[0] if len(reference) else None, sweep,
                                 dataset, metric, samples, optimizer))
    return pd.DataFrame(rows, columns=COLUMNS)


def _best(scored: pd.DataFrame, select: str) -> pd.Series | None:
    if scored.empty:
        return None
    column = scored[f"{select}_mean"]
    return scored.loc[column.idxmin() if lower_is_better(select) else column.idxmax()]


def _row(best, reference, sweep, dataset, metric, samples, optimizer=None) -> dict:
    row = {"sweep": sweep, "dataset": dataset, "kind": "default" if optimizer else "comparison",
           "optimizer": optimizer or best["optimizer"],
           "best": best["setting"], "best_mean": best[f"{metric}_mean"],
           "best_std": best[f"{metric}_std"], "best_n": int(best[f"{metric}_n"])}
    if reference is None:
        return row | {"reference": None, "verdict": "the default is not among the settings"}
    ours = samples.get((sweep, dataset, best["setting"]), [])
    theirs = samples.get((sweep, dataset, reference["setting"]), [])
    difference = float(reference[f"{metric}_mean"] - best[f"{metric}_mean"])
    p = welch(ours, theirs)
    said = ("the default is best" if reference["setting"] == best["setting"]
            else verdict(p, len(ours), len(theirs), difference, lower=lower_is_better(metric)))
    return row | {"reference": reference["setting"], "reference_mean": reference[f"{metric}_mean"],
                  "reference_std": reference[f"{metric}_std"],
                  "reference_n": int(reference[f"{metric}_n"]), "difference": difference,
                  "p_value": p, "verdict": said}


def display_overview(overview: pd.DataFrame, metric: str, select: str) -> pd.DataFrame:
    """The overview as people read it: mean ± std (n) strings."""
    def score(prefix):
        return [mean_std(m, s, int(n)) if isinstance(r, str) or prefix == "best" else "–"
                for m, s, n, r in zip(overview[f"{prefix}_mean"], overview[f"{prefix}_std"],
                                      overview[f"{prefix}_n"].fillna(0), overview["reference"])]
    return pd.DataFrame({
        "sweep": overview["sweep"], "dataset": overview["dataset"],
        f"best (chosen on {select})": overview["best"], f"best {metric}": score("best"),
        "compared with": overview["reference"].fillna("–"), f"its {metric}": score("reference"),
        "difference": overview["difference"].map(lambda d: "–" if pd.isna(d) else f"{d:+.4f}"),
        "verdict (Welch, alpha 0.05)": overview["verdict"],
    })


# --- the figure ---------------------------------------------------------------------------------


def overview_figure(overview: pd.DataFrame, metric: str, select: str):
    """Left: the optimizer comparison; right: each sweep's best setting (filled) against its
    default (open), on `metric`, 95% t-intervals, Welch's verdict on the right axis: a seaborn
    FacetGrid column per kind of row, each drawn by its function (`PANELS`)."""
    shown = overview[overview["kind"].isin(PANELS)]
    panels = [kind for kind in PANELS if shown["kind"].eq(kind).any()]
    height = max(2.6, 0.42 * max(int(shown["kind"].eq("default").sum()), 1) + 1.2)
    grid = facet_grid(shown, col="kind" if panels else None, col_order=panels, panel=(5.0, height))
    grid.map_dataframe(_draw_panel, metric=metric)
    fig = grid.figure
    figure_title(fig, f"Overview: final {metric}, mean over seeds with 95% t-interval; best "
                      f"settings chosen on {select}")
    return fig


def _draw_panel(data: pd.DataFrame, metric: str, **_) -> None:
    PANELS[data["kind"].iloc[0]](plt.gca(), data, metric)


def _half(std, n) -> float:
    half = ci95_half(std, n)
    return 0.0 if math.isnan(half) else half


def _draw_comparison(ax, rows: pd.DataFrame, metric: str) -> None:
    """One point per optimizer of each comparison sweep, in its report-wide colour."""
    points = {}
    for row in rows.itertuples(index=False):
        points[(row.sweep, row.best)] = (row.best_mean, row.best_std, row.best_n)
        points[(row.sweep, row.reference)] = (row.reference_mean, row.reference_std,
                                              row.reference_n)
    order = sorted(points, key=lambda k: (k[0], optimizer_rank(k[1])))
    for i, (sweep, optimizer) in enumerate(order):
        mean, std, n = points[(sweep, optimizer)]
        ax.errorbar([i], [mean], yerr=[_half(std, n)], fmt="o", color=optimizer_colour(optimizer),
                    capsize=3, label=f"{optimizer} (n={int(n)})")
    many = len({k[0] for k in order}) > 1
    ax.set_xticks(range(len(order)), [f"{s}\n{o}" if many else o for s, o in order],
                  rotation=30 if len(order) > 3 else 0, ha="right" if len(order) > 3 else "center")
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylabel(metric, fontsize=9)
    ax.set_title("optimizer comparison (defaults)", fontsize=10)
    ax.grid(alpha=0.3)


def _draw_against_default(ax, rows: pd.DataFrame, metric: str) -> None:
    """A row per sweep and optimizer: default (open) and best (filled) with their intervals."""
    rows = rows.reset_index(drop=True)
    y = np.arange(len(rows))[::-1]
    for yi, row in zip(y, rows.itertuples(index=False)):
        colour = optimizer_colour(str(row.optimizer))
        if isinstance(row.reference, str) and row.reference != row.best:
            ax.errorbar([row.reference_mean], [yi],
                        xerr=[_half(row.reference_std, row.reference_n)], fmt="o", mfc="white",
                        color=colour, capsize=3)
            ax.plot([row.reference_mean, row.best_mean], [yi, yi], color=colour, linewidth=0.8)
        ax.errorbar([row.best_mean], [yi], xerr=[_half(row.best_std, row.best_n)], fmt="o",
                    color=colour, capsize=3, label=f"_{row.sweep}")
    ax.set_yticks(y, [_row_label(r) for r in rows.itertuples()], fontsize=8)
    right = ax.secondary_yaxis("right")
    right.set_yticks(y, [_short_verdict(v) for v in rows["verdict"]], fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(metric, fontsize=9)
    ax.set_title("best setting (●) against the default (○)", fontsize=10)
    ax.grid(alpha=0.3, axis="x")


def _row_label(row) -> str:
    """'lr_grid: adam, lr=0.001' or 'adam_eps (adam): eps=1e-08', numbers at 3 significant
    digits."""
    best = re.sub(r"(?<![\w.])\d+\.\d{4,}(?:e-?\d+)?", lambda m: f"{float(m.group()):.3g}",
                  str(row.best))
    named = best.startswith(f"{row.optimizer},") or best == str(row.optimizer)
    return f"{row.sweep}: {best}" if named else f"{row.sweep} ({row.optimizer}): {best}"


def _short_verdict(text: str) -> str:
    return (text.replace("the default is not among the settings", "no default swept")
            .replace("not tested (needs 2 or more seeds in both settings)", "not tested (n<2)"))


PANELS = {"comparison": _draw_comparison, "default": _draw_against_default}


def write_overview(overview: pd.DataFrame, metric: str, select: str, path: Path) -> Path | None:
    """overview.png, or None where there is nothing to draw."""
    if overview.empty:
        return None
    return save(overview_figure(overview, metric, select), path)
