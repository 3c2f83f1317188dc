"""An Optuna study stored beside the runs is found, summarised and plotted, and left untouched."""
import hashlib

import matplotlib
import pytest

from optsweep.analysis import load_runs
from optsweep.analysis.figures import write_figures
from optsweep.analysis.optuna_study import find_studies
from optsweep.analysis.report import write_report

optuna = pytest.importorskip("optuna")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def study_sweep(lr_sweep):
    """adam_lr with optuna.db: 4 trials, objective = lr; trial 2 pruned after reporting 0.5 at
    step 1, trial 3 failed."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = f"sqlite:///{lr_sweep / 'optuna.db'}"
    study = optuna.create_study(study_name="adam_lr", storage=storage, direction="maximize")
    for number, lr in enumerate((1e-4, 1e-3, 1e-2, 1e-1)):
        trial = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True)})
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
    completed = study.trials[study.trials["state"] == "COMPLETE"]
    assert study.best()["value"] == completed["params_optimizer.lr"].max()


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_study_figures_come_from_optuna_and_the_report_says_what_was_skipped(study_sweep, tmp_path):
    before = digest(study_sweep / "optuna.db"), (study_sweep / "optuna.db").stat().st_mtime_ns
    style = dict(matplotlib.rcParams)
    runset = load_runs([study_sweep])
    studies, _ = find_studies([study_sweep])
    figures = write_figures(runset, tmp_path / "figures", studies, workers=1)
    names = sorted(p.name for p in figures["adam_lr"])
    assert names == ["adam_lr_adam_lr_history.png", "adam_lr_adam_lr_intermediate.png",
                     "adam_lr_adam_lr_objective_vs_lr.png", "adam_lr_curves.png",
                     "adam_lr_final.png"]
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in figures["adam_lr"])
    report = write_report(runset, tmp_path, studies=studies, figures=figures).read_text()
    assert "Optuna study <code>adam_lr</code>" in report
    assert "Importances figure skipped: parameter importances need 2 or more parameters" in report
    # read-only: the study file is byte for byte what it was; optuna's ggplot style did not leak
    assert (digest(study_sweep / "optuna.db"), (study_sweep / "optuna.db").stat().st_mtime_ns) == before
    assert dict(matplotlib.rcParams) == style


def test_optuna_draws_the_history_and_the_objective_against_lr_from_the_study(study_sweep):
    from optsweep.analysis.optuna_study import study_figures

    study = find_studies([study_sweep])[0][0]
    figures = study_figures(study)
    completed = study.trials[study.trials["state"] == "COMPLETE"]
    history = figures["history"].axes[0]
    points = [c.get_offsets() for c in history.collections if len(c.get_offsets())]
    assert sorted(points[0][:, 1]) == pytest.approx(sorted(completed["value"]))
    objective = figures["objective_vs_lr"].axes[0]
    assert objective.get_xscale() == "log" and objective.get_xlabel() == "optimizer.lr"
    intermediate = figures["intermediate"].axes[0]
    assert [list(line.get_ydata()) for line in intermediate.lines] == [[0.5]]


def test_a_study_without_completed_trials_skips_its_figures_and_says_why(tmp_path):
    from optsweep.analysis.optuna_study import study_figures

    folder = tmp_path / "empty_search"
    folder.mkdir()
    storage = f"sqlite:///{folder / 'optuna.db'}"
    study = optuna.create_study(study_name="empty", storage=storage, direction="maximize")
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}),
               state=optuna.trial.TrialState.FAIL)
    found = find_studies([folder])[0][0]
    assert study_figures(found) == {}
    assert found.notes[0] == "history figure skipped: no completed trial, so no optimization history"
    assert len(found.notes) == 4


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


def test_optuna_figures_are_not_clipped(study_sweep):
    from test_figures import assert_on_canvas

    from optsweep.analysis.optuna_study import study_figures

    for figure in study_figures(find_studies([study_sweep])[0][0]).values():
        assert_on_canvas(figure)
