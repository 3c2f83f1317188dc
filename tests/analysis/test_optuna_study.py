"""An Optuna study stored beside the runs is found, summarised and plotted, and left untouched;
its figures draw what its trials say (checked against values worked out from the trials)."""
import hashlib

import matplotlib
import matplotlib.colors
import numpy as np
import pytest
import seaborn as sns
from conftest import write_study
from test_figures import assert_on_canvas, lines_by_label

from optsweep.analysis import load_runs
from optsweep.analysis.figures import write_figures
from optsweep.analysis.optuna_study import (
    STATE_COLOURS,
    find_studies,
    study_figures,
    write_study_figures,
)
from optsweep.analysis.report import write_report

optuna = pytest.importorskip("optuna")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STUDY_LRS = (1e-4, 1e-3, 1e-2, 1e-1)  # study_sweep's trials, in order


@pytest.fixture
def study_sweep(lr_sweep):
    """adam_lr with optuna.db: 4 trials at lr 1e-4, 1e-3, 1e-2, 1e-1 (enqueued, not sampled),
    objective = lr; trial 2 pruned after reporting 0.5 at step 1, trial 3 failed."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = f"sqlite:///{lr_sweep / 'optuna.db'}"
    study = optuna.create_study(study_name="adam_lr", storage=storage, direction="maximize")
    space = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True)}
    for number, lr in enumerate(STUDY_LRS):
        study.enqueue_trial({"optimizer.lr": lr})
        trial = study.ask(space)
        if number == 2:
            trial.report(0.5, step=1)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif number == 3:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, trial.params["optimizer.lr"])
    return lr_sweep


def test_study_is_found_and_read(study_sweep):
    studies, skipped = find_studies([study_sweep.parent])
    assert skipped == [] and len(studies) == 1
    study = studies[0]
    assert (study.sweep, study.name, study.direction) == ("adam_lr", "adam_lr", "maximize")
    assert list(study.trials["state"]) == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    assert list(study.trials["params_optimizer.lr"]) == pytest.approx(STUDY_LRS)
    assert study.best()["value"] == pytest.approx(1e-3)  # the larger of the two completed lrs


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_study_figures_are_written_and_the_report_says_what_was_skipped(study_sweep, tmp_path):
    before = digest(study_sweep / "optuna.db"), (study_sweep / "optuna.db").stat().st_mtime_ns
    style = dict(matplotlib.rcParams)
    runset = load_runs([study_sweep])
    studies, _ = find_studies([study_sweep])
    figures = write_figures(runset, tmp_path / "figures", workers=1)
    write_study_figures(studies, tmp_path / "figures", figures)
    names = sorted(p.name for p in figures["adam_lr"])
    assert names == ["adam_lr_adam_lr_history.png", "adam_lr_adam_lr_intermediate.png",
                     "adam_lr_adam_lr_objective_vs_lr.png", "adam_lr_curves.png",
                     "adam_lr_final.png"]
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in figures["adam_lr"])
    report = write_report(runset, tmp_path, studies=studies, figures=figures).read_text()
    assert "Optuna study <code>adam_lr</code>" in report
    assert "Importances figure skipped: parameter importances need 2 or more parameters" in report
    # read-only: the study file is byte for byte what it was; no style leaked into matplotlib
    after = digest(study_sweep / "optuna.db"), (study_sweep / "optuna.db").stat().st_mtime_ns
    assert after == before
    assert dict(matplotlib.rcParams) == style


@pytest.fixture
def searched(tmp_path):
    """conftest.write_study's study (12 trials, lr and weight_decay), as the analysis reads it."""
    return find_studies([write_study(tmp_path / "lr_search")])[0][0]


def frozen(study, *states):
    """The study's trials in `states`, through Optuna's public API."""
    return [t for t in study.study.get_trials() if t.state.name in states]


def points(ax):
    return np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_history_is_each_completed_value_and_the_best_so_far_in_trial_order(tmp_path, direction):
    study = find_studies([write_study(tmp_path / "lr_search", direction=direction)])[0][0]
    ax = study_figures(study)["history"].axes[0]
    trials = study.trials.sort_values("number")
    completed = trials[trials["state"] == "COMPLETE"]
    np.testing.assert_allclose(points(ax), completed[["number", "value"]].to_numpy())
    # at every trial from the first completed one: the best completed value up to it (pruned and
    # failed trials carry the best over)
    best = max if direction == "maximize" else min
    expected = [(n, best(completed.loc[completed["number"] <= n, "value"]))
                for n in trials["number"] if (completed["number"] <= n).any()]
    np.testing.assert_allclose(lines_by_label(ax)["best so far"].get_xydata(), expected)
    assert lines_by_label(ax)["best so far"].get_drawstyle() == "steps-post"


def test_intermediate_values_are_each_trials_reports_and_pruned_curves_end_at_their_last_step(
        searched):
    ax = study_figures(searched)["intermediate"].axes[0]
    shown = frozen(searched, "COMPLETE", "PRUNED")  # not the failed trial's report
    assert len(ax.lines) == len(shown)
    for trial in shown:
        steps = sorted(trial.intermediate_values)
        lines = [line for line in ax.lines if list(line.get_xdata()) == steps
                 and list(line.get_ydata()) == [trial.intermediate_values[s] for s in steps]]
        assert len(lines) == 1, trial.number
        colour = matplotlib.colors.to_rgb(lines[0].get_color())
        assert colour == pytest.approx(STATE_COLOURS[trial.state.name])
    pruned = frozen(searched, "PRUNED")
    ends = [(max(t.intermediate_values), t.intermediate_values[max(t.intermediate_values)])
            for t in pruned]
    assert sorted(map(tuple, points(ax))) == sorted(ends)  # the pruned marker, and only there


def test_objective_against_lr_is_each_completed_trial_at_its_lr_on_a_log_axis(searched):
    ax = study_figures(searched)["objective_vs_lr"].axes[0]
    completed = searched.trials[searched.trials["state"] == "COMPLETE"]
    (dots,) = [c for c in ax.collections if len(c.get_offsets())]
    np.testing.assert_allclose(dots.get_offsets(),
                               completed[["params_optimizer.lr", "value"]].to_numpy())
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "optimizer.lr"
    lightness = dots.get_facecolors()[:, :3].sum(axis=1)  # light for the first trial, dark last
    assert list(lightness) == sorted(lightness, reverse=True)


def test_importance_bars_are_optunas_param_importances_most_important_first(searched):
    ax = study_figures(searched)["importances"].axes[0]
    expected = optuna.importance.get_param_importances(searched.study)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(expected)
    bars = ax.containers[0]
    assert [bar.get_width() for bar in bars] == pytest.approx(list(expected.values()))
    assert [t.get_text() for t in ax.texts] == [f"{v:.2f}" for v in expected.values()]
    assert ax.yaxis_inverted()  # the first (most important) bar is on top


def test_study_figures_take_the_seaborn_theme_in_force_when_drawn(searched):
    with sns.axes_style("darkgrid"):
        themed = study_figures(searched)
    plain = study_figures(searched)
    dark = matplotlib.colors.to_rgba(sns.axes_style("darkgrid")["axes.facecolor"])
    assert len(themed) == 4
    assert all(fig.axes[0].get_facecolor() == dark for fig in themed.values())
    assert all(fig.axes[0].get_facecolor() != dark for fig in plain.values())


def test_a_study_without_completed_trials_skips_its_figures_and_says_why(tmp_path):
    folder = tmp_path / "empty_search"
    folder.mkdir()
    storage = f"sqlite:///{folder / 'optuna.db'}"
    study = optuna.create_study(study_name="empty", storage=storage, direction="maximize")
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}),
               state=optuna.trial.TrialState.FAIL)
    found = find_studies([folder])[0][0]
    assert study_figures(found) == {}
    assert found.notes[0] == ("history figure skipped: no completed trial, so no optimization "
                              "history")
    assert len(found.notes) == 4


def test_a_figure_that_cannot_be_drawn_is_left_out_and_the_note_says_why(searched, monkeypatch):
    def refuse(study, **_):
        raise ValueError("no search space shared by the completed trials")

    monkeypatch.setattr(optuna.importance, "get_param_importances", refuse)
    figures = study_figures(searched)
    assert sorted(figures) == ["history", "intermediate", "objective_vs_lr"]
    assert searched.notes == ["importances figure skipped: it could not be drawn (no search space "
                              "shared by the completed trials)"]


def test_unreadable_storage_is_skipped(lr_sweep):
    (lr_sweep / "optuna.db").write_text("not a database")
    studies, skipped = find_studies([lr_sweep])
    assert studies == [] and skipped[0][0] == str(lr_sweep / "optuna.db")


def test_study_is_filed_under_the_same_sweep_label_as_its_runs(study_sweep, tmp_path):
    nested = tmp_path / "multirun" / "lr_search"
    nested.mkdir(parents=True)
    study_sweep.rename(nested / "adam")
    studies, _ = find_studies([tmp_path / "multirun"])
    runs = load_runs([tmp_path / "multirun"])
    assert [s.sweep for s in studies] == runs.sweeps == ["lr_search/adam"]


@pytest.mark.parametrize("name", ["adam_lr", "a_study_with_a_rather_long_name_to_test_wrapping"])
def test_study_figures_are_not_clipped(tmp_path, name):
    study = find_studies([write_study(tmp_path / "lr_search", name=name)])[0][0]
    figures = study_figures(study)
    assert len(figures) == 4
    for figure in figures.values():
        assert_on_canvas(figure)
