"""Optuna studies stored beside a sweep (`multirun/<sweep>/optuna.db`): find, summarise, plot.

Plots are drawn from the trials dataframe with matplotlib/seaborn; optuna.visualization is avoided
because it needs plotly. optuna is imported only when a study file is found (it is slow to import).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from optsweep.analysis.load import sweep_label

log = logging.getLogger(__name__)

STUDY_FILE = "optuna.db"
STATE_MARKERS = {"COMPLETE": "o", "PRUNED": "v", "FAIL": "s", "RUNNING": ".", "WAITING": "."}


@dataclass
class Study:
    sweep: str  # the label of the folder holding optuna.db (load.sweep_label), as its runs get
    name: str
    path: Path
    direction: str  # "maximize" or "minimize"
    trials: pd.DataFrame  # optuna's trials_dataframe(): number, value, state, params_<key>, ...

    def best(self) -> pd.Series | None:
        done = self.trials[(self.trials["state"] == "COMPLETE") & self.trials["value"].notna()]
        if done.empty:
            return None
        pick = done["value"].idxmax() if self.direction == "maximize" else done["value"].idxmin()
        return done.loc[pick]


def find_studies(paths) -> tuple[list[Study], list[tuple[str, str]]]:
    """Every study in every optuna.db under `paths`; unreadable files come back as (path, reason)."""
    studies, skipped = [], []
    for raw in paths:
        for current, dirs, files in os.walk(raw):
            dirs[:] = sorted(d for d in dirs if d != ".hydra")
            if STUDY_FILE in files:
                path = Path(current) / STUDY_FILE
                try:
                    studies.extend(read_studies(path, sweep_label(path.parent, paths)))
                except Exception as err:  # noqa: BLE001 - any storage error means: skip this file
                    log.warning("skipping Optuna storage %s: %s", path, err)
                    skipped.append((str(path), f"Optuna storage cannot be read ({err})"))
    return studies, skipped


def read_studies(path: Path, sweep: str | None = None) -> list[Study]:
    """The studies in one optuna.db, filed under ``sweep`` (default: its folder's name)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{path.resolve()}"
    found = []
    for summary in optuna.get_all_study_summaries(storage=storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        if len(study.directions) != 1:
            log.warning("skipping multi-objective study %s in %s", summary.study_name, path)
            continue
        trials = study.trials_dataframe()
        if "state" in trials.columns:  # optuna 2.x writes 'COMPLETE', older ones 'TrialState.COMPLETE'
            trials["state"] = trials["state"].astype(str).str.replace("TrialState.", "", regex=False)
        found.append(Study(sweep or path.parent.name, summary.study_name, path,
                           study.direction.name.lower(), trials))
    return found


def lr_param(trials: pd.DataFrame) -> str | None:
    """The trials column of the learning rate (`params_optimizer.lr`), else the first numeric one."""
    params = [c for c in trials.columns if c.startswith("params_")]
    lr = [c for c in params if c.rsplit(".", 1)[-1] in ("params_lr", "lr")]
    numeric = [c for c in params if pd.api.types.is_numeric_dtype(trials[c])]
    return (lr or numeric or [None])[0]


def study_figures(study: Study) -> dict:
    """{'history': Figure, 'objective_vs_<param>': Figure} for one study."""
    figures = {"history": history_figure(study)}
    param = lr_param(study.trials)
    if param is not None:
        figures[f"objective_vs_{param.removeprefix('params_').rsplit('.', 1)[-1]}"] = \
            objective_figure(study, param)
    return figures


def history_figure(study: Study):
    """Objective of each trial in order, with the best value so far as a step line."""
    trials = study.trials
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.scatterplot(data=trials, x="number", y="value", hue="state", style="state",
                    markers=STATE_MARKERS, ax=ax)
    done = trials[trials["state"] == "COMPLETE"].sort_values("number")
    running = done["value"].cummax() if study.direction == "maximize" else done["value"].cummin()
    ax.step(done["number"], running, where="post", color="0.3", label="best so far")
    ax.legend(fontsize=8)
    ax.set(xlabel="trial", ylabel="objective",
           title=f"{study.sweep}/{study.name}: optimization history ({_state_counts(trials)})")
    ax.title.set_fontsize(9)
    return fig


def objective_figure(study: Study, param: str):
    trials = study.trials
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.scatterplot(data=trials, x=param, y="value", hue="state", style="state",
                    markers=STATE_MARKERS, ax=ax)
    values = pd.to_numeric(trials[param], errors="coerce").dropna()
    if len(values) and (values > 0).all():
        ax.set_xscale("log")
    ax.set(xlabel=param.removeprefix("params_"), ylabel="objective",
           title=f"{study.sweep}/{study.name}: objective against {param.removeprefix('params_')}")
    ax.title.set_fontsize(9)
    return fig


def _state_counts(trials: pd.DataFrame) -> str:
    counts = trials["state"].value_counts()
    return ", ".join(f"{state.lower()}: {n}" for state, n in counts.items())
