"""A slot's worker process at start-up (``hydra/launcher=joblib``): it does not re-run the app's
``__main__`` (an app without the guard runs), one that dies before its first trial is said in one
line and replaced, and one that dies at every start stops the sweep with its own error, exit 1:
never a wait without end (each test runs under ``TIMEOUT_S``)."""

from __future__ import annotations

from optuna.trial import TrialState

from .conftest import trials

POOL = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2")
FRAGILE = "OPTSWEEP_TEST_FRAGILE_START"


def test_an_app_without_the_main_guard_finishes_its_study_in_worker_processes(run_app, tmp_path):
    result = run_app(*POOL, "hydra.sweeper.n_trials=3", app="guardless.py")
    assert result.returncode == 0, result.output
    done = trials(tmp_path / "sweep")
    assert [t.state for t in done] == [TrialState.COMPLETE] * 3
    assert all(t.value == (t.params["x"] - 1.0) ** 2 for t in done)
    assert "Primary config module" not in result.output


def test_a_worker_killed_before_its_first_trial_is_said_and_replaced(run_app, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv(FRAGILE, "kill")
    result = run_app(*POOL, "hydra.sweeper.n_trials=3", "hydra.sweeper.preload=[fragile_start]")
    assert result.returncode == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("killed_at_start_*")) == [
        "killed_at_start_0", "killed_at_start_1"]  # each slot's first worker died
    said = [line for line in result.output.splitlines() if "died at start-up" in line]
    assert len(said) == 2 and all("(exit code -9); a new one takes the slot" in line
                                  for line in said)
    assert [t.state for t in trials(tmp_path / "sweep")] == [TrialState.COMPLETE] * 3


def test_a_worker_that_dies_at_every_start_stops_the_sweep_with_its_error(run_app, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv(FRAGILE, "raise")
    result = run_app(*POOL, "hydra.sweeper.preload=[fragile_start]")
    assert result.returncode == 1, result.output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("optsweep: error:")]
    assert "died at start-up 3 times in a row, the last exit code 1: ImportError: fragile_start " \
        "cannot be imported in a worker" in line
    assert not list((tmp_path / "sweep").glob("*/.hydra"))  # no trial ran
