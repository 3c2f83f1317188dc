"""Optuna studies stored beside a sweep (`multirun/<sweep>/optuna.db`): find, summarise, plot.

Each study has four figures, drawn as every other figure of the report: a seaborn `FacetGrid`
(`style.facet_grid`) over a tidy frame built from the study's trials through Optuna's public API
(`Study.trials_dataframe`, `Study.get_trials`, `optuna.importance.get_param_importances`; checked
on optuna 5.1), seaborn's lines, points and bars mapped on it drawing the frame's numbers as they
are (no estimator; one row per bar), so that they take the seaborn theme in force
(``with sns.axes_style("whitegrid"): write_figures(...)``):

- `history`: each completed trial's objective against its number, and the best so far (the
  running best of the completed values in trial order, a step line);
- `intermediate`: the values each trial reported against its step (epoch), the picture of
  pruning: completed trials solid, pruned ones dotted and ending in the pruned marker where the
  pruner stopped them (the trials Optuna's own figure draws: complete, pruned, running);
- `objective_vs_<lr>`: the completed trials' objective against the learning rate (log axis, as
  every lr of the report), coloured by trial number (the sampler's path);
- `importances`: Optuna's parameter importances (its default evaluator), where a study has two
  or more parameters and completed trials.

A figure that cannot be drawn is skipped and the reason goes to the report (`Study.notes`).
Storage is opened read-only (SQLite `mode=ro`): the analysis never changes a study. optuna is
imported only when a study file is found (it is slow to import).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from optsweep import contract
from optsweep.analysis.figures import (
    LEGEND_CHAR_IN,
    STATUS_MARKERS,
    figure_title,
    log_x,
    slug,
)
from optsweep.analysis.load import sweep_label
from optsweep.analysis.style import (
    COLORBLIND,
    SEQUENTIAL,
    facet_grid,
    integer_ticks,
    outside_legend,
    save,
)
from optsweep.contract import Status

log = logging.getLogger(__name__)


@dataclass
class Study:
    sweep: str  # the label of the folder holding optuna.db (load.sweep_label), as its runs get
    name: str
    path: Path
    direction: str  # "maximize" or "minimize"
    trials: pd.DataFrame  # optuna's trials_dataframe(): number, value, state, params_<key>, ...
    study: object = field(default=None, repr=False)  # optuna.Study: reports, importances
    notes: list[str] = field(default_factory=list)  # figures skipped, and why

    def best(self) -> pd.Series | None:
        done = self.trials[(self.trials["state"] == "COMPLETE") & self.trials["value"].notna()]
        if done.empty:
            return None
        pick = done["value"].idxmax() if self.direction == "maximize" else done["value"].idxmin()
        return done.loc[pick]


def find_studies(paths) -> tuple[list[Study], list[tuple[str, str]]]:
    """Every study in every optuna.db under `paths`; unreadable files come back as (path,
    reason)."""
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
        # optuna 2.x writes 'COMPLETE', older ones 'TrialState.COMPLETE'
        if "state" in trials.columns:
            states = trials["state"].astype(str)
            trials["state"] = states.str.replace("TrialState.", "", regex=False)
        found.append(Study(sweep or path.parent.name, summary.study_name, path,
                           study.direction.name.lower(), trials, study))
    return found


def lr_param(trials: pd.DataFrame) -> str | None:
    """The trials column of the learning rate (`params_optimizer.lr`), else the first numeric
    one."""
    params = [c for c in trials.columns if c.startswith("params_")]
    lr = [c for c in params if c.rsplit(".", 1)[-1] in ("params_lr", "lr")]
    numeric = [c for c in params if pd.api.types.is_numeric_dtype(trials[c])]
    return (lr or numeric or [None])[0]


# The trials whose reported values are drawn (as Optuna's own figure): not failed, not waiting.
CURVE_STATES = ("COMPLETE", "PRUNED", "RUNNING")
STATE_COLOURS = {"COMPLETE": COLORBLIND[0], "PRUNED": COLORBLIND[3], "RUNNING": (0.55,) * 3}
STATE_DASHES = {"COMPLETE": "", "PRUNED": (1, 1.5), "RUNNING": (4, 2)}
BEST_COLOUR = COLORBLIND[1]
PRUNED_MARKER = STATUS_MARKERS[Status.PRUNED]  # as a pruned run in the sweep's figures
PANEL_IN = (5.0, 3.2)  # one panel per figure, inches
BAR_IN = 0.4  # inches of panel height per parameter of the importances
TITLES = {"history": "optimization history", "intermediate": "intermediate values (pruning)",
          "objective": "objective against {param}", "importances": "parameter importances"}


def write_study_figures(studies, out_dir, written: dict[str, list[Path]]) -> None:
    """Each study's figures into out_dir as PNG, added to ``written`` ({sweep: [paths]}, as
    ``figures.write_figures`` returns) beside its sweep's."""
    for study in studies:
        for kind, figure in study_figures(study).items():
            path = Path(out_dir) / f"{slug(study.sweep)}_{slug(study.name)}_{kind}.png"
            written.setdefault(study.sweep, []).append(save(figure, path))


def study_figures(study: Study) -> dict:
    """{kind: Figure} of one study's figures; a figure it cannot draw is left out and the reason
    appended to `study.notes`."""
    trials = study.trials
    done = int((trials["state"] == "COMPLETE").sum()) if "state" in trials else 0
    params = [c for c in trials.columns if c.startswith("params_")]
    curves = intermediate_frame(study)
    param = lr_param(trials)
    wanted = {
        "history": (done > 0, "no completed trial, so no optimization history",
                    partial(draw_history, study)),
        "intermediate": (not curves.empty,
                         "no trial reported an intermediate value (no pruning to show)",
                         partial(draw_intermediate, study, curves)),
        f"objective_vs_{_leaf(param)}": (done > 0 and param is not None,
                                         "no completed trial with a numeric parameter",
                                         partial(draw_objective, study, param)),
        "importances": (done >= 2 and len(params) >= 2,
                        f"parameter importances need 2 or more parameters and completed trials "
                        f"(this study: {len(params)} parameter(s), {done} completed)",
                        partial(draw_importances, study)),
    }
    figures = {}
    for kind, (possible, why, draw) in wanted.items():
        if not possible:
            study.notes.append(f"{kind.replace('_', ' ')} figure skipped: {why}")
            continue
        try:
            figures[kind] = draw()
        except Exception as err:  # noqa: BLE001 - a figure not drawn is skipped, said why
            study.notes.append(f"{kind} figure skipped: it could not be drawn ({err})")
    return figures


# --- tidy frames of the trials ------------------------------------------------------------------


def history_frame(study: Study) -> pd.DataFrame:
    """A row per trial in number order: `trial`, `state`, `value` (completed trials only) and
    `best`, the best completed value so far (none before the first completed trial)."""
    trials = study.trials.sort_values("number")
    value = trials["value"].where(trials["state"] == "COMPLETE")
    best = value.cummax() if study.direction == "maximize" else value.cummin()
    return pd.DataFrame({"trial": trials["number"], "state": trials["state"], "value": value,
                         "best": best.ffill()})


def intermediate_frame(study: Study) -> pd.DataFrame:
    """A row per reported value of the trials in `CURVE_STATES`: `trial`, `state`, `step`,
    `value`, and `end` (the value at a pruned trial's last step, where the pruner stopped it)."""
    columns = ["trial", "state", "step", "value"]
    if study.study is None:
        return pd.DataFrame(columns=[*columns, "end"])
    rows = [(t.number, t.state.name, step, value)
            for t in study.study.get_trials(deepcopy=False) if t.state.name in CURVE_STATES
            for step, value in sorted(t.intermediate_values.items())]
    frame = pd.DataFrame(rows, columns=columns)
    last = ~frame["trial"].duplicated(keep="last") & (frame["state"] == "PRUNED")
    return frame.assign(end=frame["value"].where(last))


def objective_frame(study: Study, param: str) -> pd.DataFrame:
    """The completed trials with a value for `param`: `trial`, `value` and the parameter (named
    without its `params_` prefix)."""
    trials = study.trials
    done = trials[(trials["state"] == "COMPLETE") & trials["value"].notna() & trials[param].notna()]
    return pd.DataFrame({"trial": done["number"], "value": done["value"],
                         param.removeprefix("params_"): pd.to_numeric(done[param])})


def importance_frame(study: Study) -> pd.DataFrame:
    """A row per parameter, most important first: Optuna's `get_param_importances` (its default
    evaluator, normalised to sum to 1) over the completed trials."""
    import optuna

    importances = optuna.importance.get_param_importances(study.study)
    return pd.DataFrame({"parameter": list(importances), "importance": list(importances.values())})


# --- figures ------------------------------------------------------------------------------------


def draw_history(study: Study):
    """Completed trials' objective against their number; the best so far as a step line."""
    frame = history_frame(study)
    grid = facet_grid(frame, panel=PANEL_IN)
    grid.map_dataframe(sns.lineplot, x="trial", y="best", estimator=None, drawstyle="steps-post",
                       color=BEST_COLOUR, linewidth=1.6, label="best so far", legend=False)
    grid.map_dataframe(sns.scatterplot, x="trial", y="value", color=STATE_COLOURS["COMPLETE"],
                       s=24, linewidth=0, label="completed trial", legend=False)
    grid.set_axis_labels("trial", f"objective ({study.direction})")
    integer_ticks(grid.ax)
    return _finish(grid, study, "history")


def draw_intermediate(study: Study, curves: pd.DataFrame):
    """Each trial's reported values against its step, coloured and dashed by its state; pruned
    trials end in the pruned marker at the step where the pruner stopped them."""
    states = [s for s in CURVE_STATES if s in set(curves["state"])]
    grid = facet_grid(curves, panel=PANEL_IN)
    grid.map_dataframe(sns.lineplot, x="step", y="value", units="trial", estimator=None,
                       hue="state", hue_order=states, palette=STATE_COLOURS, style="state",
                       style_order=states, dashes=STATE_DASHES, linewidth=1.0, legend=False)
    if curves["end"].notna().any():
        grid.map_dataframe(sns.scatterplot, x="step", y="end", marker=PRUNED_MARKER, s=36,
                           color=STATE_COLOURS["PRUNED"], edgecolor="0.15", linewidth=0.5,
                           zorder=5, legend=False)
    grid.set_axis_labels("step (epoch)", "reported objective")
    integer_ticks(grid.ax)
    handles = [Line2D([], [], color=STATE_COLOURS[s], linestyle=(0, STATE_DASHES[s] or None),
                      marker=PRUNED_MARKER if s == "PRUNED" else None, label=f"{s.lower()} trial")
               for s in states]
    return _finish(grid, study, "intermediate", handles)


def draw_objective(study: Study, param: str):
    """Completed trials' objective against `param` (log axis for lr-like keys), coloured by
    trial number, light for the first trials to dark for the last."""
    frame = objective_frame(study, param)
    name = param.removeprefix("params_")
    norm = Normalize(frame["trial"].min(), frame["trial"].max())
    grid = facet_grid(frame, panel=PANEL_IN)
    grid.map_dataframe(sns.scatterplot, x=name, y="value", hue="trial", palette=SEQUENTIAL,
                       hue_norm=norm, s=30, edgecolor="0.15", linewidth=0.4, legend=False)
    grid.set_axis_labels(name, f"objective ({study.direction})")
    log_x(grid.ax, name, frame[name])
    colours = ScalarMappable(norm=norm, cmap=sns.color_palette(SEQUENTIAL, as_cmap=True))
    grid.figure.colorbar(colours, ax=grid.ax, label="trial", fraction=0.05)
    return _finish(grid, study, "objective", param=param)


def draw_importances(study: Study):
    """A bar per parameter, most important on top, its importance written at its end."""
    frame = importance_frame(study)
    grid = facet_grid(frame, panel=(PANEL_IN[0], 1.0 + BAR_IN * len(frame)))
    grid.map_dataframe(sns.barplot, x="importance", y="parameter", order=list(frame["parameter"]),
                       orient="h", errorbar=None, color=STATE_COLOURS["COMPLETE"])
    grid.set_axis_labels("importance (sums to 1)", "")
    grid.ax.bar_label(grid.ax.containers[0], fmt="%.2f", fontsize=8, padding=2)
    grid.ax.set_xlim(0, 1.1 * frame["importance"].max() or 1)
    return _finish(grid, study, "importances")


def _finish(grid, study: Study, kind: str, handles=None, param: str | None = None):
    """The figure's title (study, figure, trial counts by state) and its legend outside."""
    ax = grid.ax
    ax.grid(alpha=0.3)
    title = TITLES[kind].format(param=_leaf(param))
    figure_title(grid.figure,
                 f"{study.sweep}/{study.name}: {title} ({_state_counts(study.trials)})")
    handles = handles or ax.get_legend_handles_labels()[0]
    outside_legend(grid.figure, handles, "", width_in=max(
        [len(h.get_label()) for h in handles] + [0]) * LEGEND_CHAR_IN)
    return grid.figure


def _leaf(param: str | None) -> str:
    return (param or "params_value").removeprefix("params_").rsplit(".", 1)[-1]


def _state_counts(trials: pd.DataFrame) -> str:
    counts = trials["state"].value_counts()
    return ", ".join(f"{state.lower()}: {n}" for state, n in counts.items())
