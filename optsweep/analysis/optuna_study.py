"""Optuna studies stored beside a sweep (`multirun/<sweep>/optuna.db`): find, summarise, plot.

Figures come from Optuna's own `optuna.visualization.matplotlib` (public API, checked on optuna 4.9
and 5.0): the optimization history, the intermediate values (the picture of pruning), the objective
against the learning rate (slice), and parameter importances where a study has two or more
parameters. A figure that cannot be drawn is skipped and the reason goes to the report
(`Study.notes`). Storage is opened read-only (SQLite `mode=ro`): the analysis never changes a study.
optuna is imported only when a study file is found (it is slow to import).
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import pandas as pd

from optsweep import contract
from optsweep.analysis.load import sweep_label
from optsweep.analysis.style import integer_ticks

log = logging.getLogger(__name__)


@dataclass
class Study:
    sweep: str  # the label of the folder holding optuna.db (load.sweep_label), as its runs get
    name: str
    path: Path
    direction: str  # "maximize" or "minimize"
    trials: pd.DataFrame  # optuna's trials_dataframe(): number, value, state, params_<key>, ...
    study: object = field(default=None, repr=False)  # the optuna.Study, for optuna's figures
    notes: list[str] = field(default_factory=list)  # figures skipped, and why

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
            dirs[:] = sorted(d for d in dirs if d != contract.HYDRA_DIR)
            if contract.OPTUNA_DB_FILE in files:
                path = Path(current) / contract.OPTUNA_DB_FILE
                try:
                    studies.extend(read_studies(path, sweep_label(path.parent, paths)))
                except Exception as err:  # noqa: BLE001 - any storage error means: skip this file
                    log.warning("skipping Optuna storage %s: %s", path, err)
                    skipped.append((str(path), f"Optuna storage cannot be read ({err})"))
    return studies, skipped


def read_only_url(path: Path) -> str:
    """SQLAlchemy URL opening the SQLite file read-only: a study is read, never written."""
    return f"sqlite:///file:{path.resolve()}?mode=ro&uri=true"


def read_studies(path: Path, sweep: str | None = None) -> list[Study]:
    """The studies in one optuna.db, filed under ``sweep`` (default: its folder's name)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = read_only_url(path)
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
                           study.direction.name.lower(), trials, study))
    return found


def lr_param(trials: pd.DataFrame) -> str | None:
    """The trials column of the learning rate (`params_optimizer.lr`), else the first numeric one."""
    params = [c for c in trials.columns if c.startswith("params_")]
    lr = [c for c in params if c.rsplit(".", 1)[-1] in ("params_lr", "lr")]
    numeric = [c for c in params if pd.api.types.is_numeric_dtype(trials[c])]
    return (lr or numeric or [None])[0]


def study_figures(study: Study) -> dict:
    """{kind: Figure} of optuna's figures for one study; a figure it cannot draw is left out and
    the reason appended to `study.notes`."""
    trials = study.trials
    done = int((trials["state"] == "COMPLETE").sum()) if "state" in trials else 0
    params = [c for c in trials.columns if c.startswith("params_")]
    reported = any(t.intermediate_values for t in study.study.trials) if study.study else False
    param = lr_param(trials)
    wanted = {
        "history": (done > 0, "no completed trial, so no optimization history"),
        "intermediate": (reported, "no trial reported an intermediate value (no pruning to show)"),
        f"objective_vs_{_leaf(param)}": (done > 0 and param is not None,
                                         "no completed trial with a numeric parameter"),
        "importances": (done >= 2 and len(params) >= 2,
                        f"parameter importances need 2 or more parameters and completed trials "
                        f"(this study: {len(params)} parameter(s), {done} completed)"),
    }
    figures = {}
    for kind, (possible, why) in wanted.items():
        if not possible:
            study.notes.append(f"{kind.replace('_', ' ')} figure skipped: {why}")
            continue
        try:
            figures[kind] = _optuna_figure(study, kind.split("_vs_")[0], param)
        except Exception as err:  # noqa: BLE001 - a figure optuna cannot draw is skipped, said why
            study.notes.append(f"{kind} figure skipped: optuna could not draw it ({err})")
    return figures


PLOTS = {"history": "plot_optimization_history", "intermediate": "plot_intermediate_values",
         "objective": "plot_slice", "importances": "plot_param_importances"}
TITLES = {"history": "optimization history", "intermediate": "intermediate values (pruning)",
          "objective": "objective against {param}", "importances": "parameter importances"}


def _optuna_figure(study: Study, kind: str, param: str | None):
    """One optuna.visualization.matplotlib figure, its look kept to itself: optuna calls
    plt.style.use("ggplot") (a global theme), which rc_context undoes as soon as it returns."""
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    kwargs = {"params": [param.removeprefix("params_")]} if kind == "objective" else {}
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = getattr(optuna_plots, PLOTS[kind])(study.study, **kwargs)
    ax = ax.flat[0] if hasattr(ax, "flat") else ax
    fig = ax.figure
    fig.set_size_inches(6.4, 3.8)
    fig.set_layout_engine("tight")  # constrained layout fails on optuna's axes (ZeroDivisionError)
    ax.set_title("")  # optuna's centred "... Plot" title; ours goes left, with the trial counts
    if kind == "intermediate":
        integer_ticks(ax)  # steps are epochs
    ax.set_title(f"{study.sweep}/{study.name}: "
                 f"{TITLES[kind].format(param=_leaf(param))} ({_state_counts(study.trials)})",
                 fontsize=9, loc="left")
    legend = ax.get_legend()
    if legend is not None and kind == "intermediate":
        legend.remove()  # one entry per trial: the lines tell the story, the legend hides it
    return fig


def _leaf(param: str | None) -> str:
    return (param or "params_value").removeprefix("params_").rsplit(".", 1)[-1]


def _state_counts(trials: pd.DataFrame) -> str:
    counts = trials["state"].value_counts()
    return ", ".join(f"{state.lower()}: {n}" for state, n in counts.items())
