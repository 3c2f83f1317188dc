"""The sweeper driving small Hydra apps of its own (tests/sweeper/apps, outside optsweep's conf/),
run as a user runs them: ``python task.py -m ...``. Each test reads the study and
optimization_results.yaml the sweep left behind."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import pytest
from optuna.trial import TrialState

from .conftest import APPS, TIMEOUT_S, app_command, app_env, results, run_workers, trials

COMPLETE, FAIL, PRUNED, RUNNING = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED,
                                   TrialState.RUNNING)
pytestmark = pytest.mark.usefixtures("schedule")  # each test under slots and batches


@pytest.mark.slow
def test_tpe_finds_the_minimum_and_the_same_seed_gives_the_same_trials(run_app, tmp_path):
    args = ("hydra.sweeper.n_trials=16", "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.sampler.n_startup_trials=6")
    for sweep in ("a", "b"):
        assert run_app(*args, f"hydra.sweep.dir={sweep}").returncode == 0
    first, second = trials(tmp_path / "a"), trials(tmp_path / "b")
    assert [t.params for t in first] == [t.params for t in second]
    assert len(first) == 16 and all(t.state == COMPLETE for t in first)
    best = results(tmp_path / "a")
    # (x - 1)^2 over x in [-4, 4]: random search's 16 draws get within 0.1 only 1 time in 2
    assert best["name"] == "optuna" and best["best_value"] < 0.01
    assert abs(best["best_params"]["x"] - 1.0) < 0.1 and best["states"] == {"COMPLETE": 16}
    assert sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_dir()) == \
        sorted(str(n) for n in range(16))  # job directory = trial number


def test_a_grid_smaller_than_n_trials_ends_cleanly_after_its_points(run_app, tmp_path):
    result = run_app("hydra/sweeper/sampler=grid", "x=choice(0,1,2)", "y=range(0,2)",
                     "hydra.sweeper.n_trials=10", "hydra.sweeper.n_jobs=4")
    assert result.returncode == 0, result.output
    done = trials(tmp_path / "sweep")
    assert sorted((t.params["x"], t.params["y"]) for t in done) == \
        [(x, y) for x in (0, 1, 2) for y in (0, 1)]  # 6 points, each once
    assert all(t.state == COMPLETE for t in done)
    assert results(tmp_path / "sweep")["best_params"] == {"x": 1, "y": 0}


def test_two_objectives_write_their_pareto_solutions(run_app, tmp_path):
    result = run_app("mode=pair", "hydra.sweeper.direction=[minimize,maximize]",
                     "y=interval(0,1)", "hydra.sweeper.n_trials=5")
    assert result.returncode == 0, result.output
    done = trials(tmp_path / "sweep")
    assert [t.state for t in done] == [COMPLETE] * 5
    solutions = results(tmp_path / "sweep")["solutions"]
    assert solutions and all(len(s["values"]) == 2 and set(s["params"]) == {"x", "y"}
                             for s in solutions)
    for s in solutions:  # no other trial dominates a Pareto solution
        assert not any(t.values[0] < s["values"][0] and t.values[1] > s["values"][1] for t in done)
    log = (tmp_path / "sweep" / "0" / "task.log").read_text()
    assert log.count("does not prune multi-objective studies") == 1  # reported twice, warned once


def test_a_task_that_raises_is_a_failed_trial_and_stops_the_sweep_by_default(run_app, tmp_path):
    result = run_app("mode=raise")
    assert result.returncode != 0
    assert "boom at x=" in result.output and "max_failure_rate=0.0" in result.output
    # the crash ran again once (crash_retries=1) in its directory, crashed again, ended the sweep
    crashed, rerun = trials(tmp_path / "sweep")
    assert crashed.state == rerun.state == FAIL
    assert rerun.user_attrs["error"].startswith("ValueError: boom")
    assert rerun.params == crashed.params and rerun.system_attrs["failed_trial"] == 0
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0"]


def test_max_failure_rate_one_lets_a_failing_sweep_go_on(run_app, tmp_path):
    result = run_app("mode=raise", "hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.n_trials=3",
                     "hydra.sweeper.crash_retries=0")
    assert result.returncode == 0, result.output
    assert [t.state for t in trials(tmp_path / "sweep")] == [FAIL] * 3
    assert results(tmp_path / "sweep")["states"] == {"FAIL": 3}


def test_a_crashed_trial_runs_again_in_its_directory_and_the_study_ends_at_its_budget(
        run_app, tmp_path):
    # every first attempt crashes; default max_failure_rate=0.0: a crash queued again is no failure
    result = run_app("mode=crash_once", "hydra.sweeper.n_trials=2")
    assert result.returncode == 0, result.output
    sweep = tmp_path / "sweep"
    done = trials(sweep)
    assert [t.state for t in done] == [FAIL, COMPLETE, FAIL, COMPLETE]
    assert [t.system_attrs.get("failed_trial") for t in done] == [None, 0, None, 2]
    assert [done[1].params, done[3].params] == [done[0].params, done[2].params]
    assert done[0].user_attrs["error"].startswith("RuntimeError: crash at x=")
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "2"]
    for job in ("0", "2"):  # the crashed attempt's record kept aside, the re-run's in its place
        assert json.loads((sweep / job / "summary.crashed.json").read_text()) == {
            "status": "failed"}
        assert json.loads((sweep / job / "summary.json").read_text()) == {"status": "completed"}
    assert results(sweep)["retried"] == [{"trial": 1, "failed_trial": 0},
                                         {"trial": 3, "failed_trial": 2}]


def test_a_crash_runs_again_crash_retries_times_then_counts_as_failed(run_app, tmp_path):
    result = run_app("mode=raise", "hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.n_trials=1",
                     "hydra.sweeper.crash_retries=2")
    assert result.returncode == 0, result.output
    done = trials(tmp_path / "sweep")
    assert [t.state for t in done] == [FAIL] * 3  # one setting, run 1 + 2 times
    assert [t.system_attrs.get("retry_history") for t in done] == [None, [0], [0, 1]]
    assert {t.system_attrs.get("failed_trial", 0) for t in done} == {0}
    assert [line.rsplit("queued to run again in ", 1)[1] for line in result.output.splitlines()
            if "queued to run again" in line] == [
        f"sweep/0 (re-run {n} of at most 2)" for n in (1, 2)]


def test_crash_retries_below_zero_is_refused_before_any_job(run_app, tmp_path):
    result = run_app("hydra.sweeper.crash_retries=-1")
    assert result.returncode == 2 and "hydra.sweeper.crash_retries=-1 is invalid" in result.stderr
    assert not (tmp_path / "sweep" / "0").exists()


def test_a_nan_result_is_a_failed_trial_not_a_crash(run_app, tmp_path):
    result = run_app("mode=nonfinite", "hydra.sweeper.max_failure_rate=1.0",
                     "hydra.sweeper.n_trials=2")
    assert result.returncode == 0, result.output
    done = trials(tmp_path / "sweep")
    assert [t.state for t in done] == [FAIL, FAIL]
    assert all("not a finite number" in t.user_attrs["error"] for t in done)


def test_reported_steps_are_pruned_in_joblib_worker_processes(tmp_path):
    # the threshold pruner stops a trial whose loss x^2 / (step + 1) is above 1 at step 0
    sweeper = subprocess.Popen(
        app_command("mode=steps", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                    "hydra.sweeper.n_jobs=2", "hydra/sweeper/pruner=threshold",
                    "hydra.sweeper.pruner.upper=1.0"),
        cwd=tmp_path, env=app_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = sweeper.communicate(timeout=TIMEOUT_S)
    assert sweeper.returncode == 0, output
    done = trials(tmp_path / "sweep")
    assert {t.state for t in done} == {COMPLETE, PRUNED}
    for t in done:
        x2 = t.params["x"] ** 2
        if x2 > 1.0:
            assert t.state == PRUNED and t.intermediate_values == {0: x2} and t.value == x2
        else:
            assert t.state == COMPLETE and sorted(t.intermediate_values) == [0, 1, 2, 3]
    assert results(tmp_path / "sweep")["pruned"] == [
        {"trial": t.number, "last_step": 0} for t in done if t.state == PRUNED]
    # each job ran in a joblib worker process, not in the sweeper's
    pids = {int((tmp_path / "sweep" / str(t.number) / "pid").read_text()) for t in done}
    assert sweeper.pid not in pids


def test_a_task_that_never_reports_is_never_pruned(run_app, tmp_path):
    result = run_app("hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=-1.0",
                     "hydra.sweeper.n_trials=2")
    assert result.returncode == 0, result.output
    assert [t.state for t in trials(tmp_path / "sweep")] == [COMPLETE, COMPLETE]


def test_a_custom_search_space_adds_parameters(run_app, tmp_path):
    result = run_app("hydra.sweeper.custom_search_space=task.custom_space",
                     "hydra.sweeper.n_trials=3")
    assert result.returncode == 0, result.output
    for t in trials(tmp_path / "sweep"):
        assert t.state == COMPLETE and set(t.params) == {"x", "y"}
        assert t.params["y"] <= max(t.params["x"], -0.5)
        assert t.value == pytest.approx((t.params["x"] - 1) ** 2 + t.params["y"] ** 2)


@pytest.mark.slow
def test_n_trials_is_the_studys_total_so_a_rerun_finishes_it(run_app, tmp_path):
    assert run_app("hydra.sweeper.n_trials=3").returncode == 0
    first = trials(tmp_path / "sweep")
    again = run_app("hydra.sweeper.n_trials=3")
    assert again.returncode == 0 and "3 of 3 trials exist" in again.output
    assert "Launching" not in again.output and trials(tmp_path / "sweep") == first
    assert run_app("hydra.sweeper.n_trials=5").returncode == 0
    assert [t.number for t in trials(tmp_path / "sweep")] == list(range(5))


def test_a_killed_sweep_rerun_finishes_its_trials_running_the_cut_one_again(run_app, tmp_path):
    args = ("mode=stall", f"stall_file={tmp_path / 'stall'}", "hydra.sweeper.n_trials=3")
    (tmp_path / "stall").write_text("")
    worker = subprocess.Popen(app_command(*args), cwd=tmp_path, env=app_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + TIMEOUT_S
    while not (tmp_path / "stall.started").exists() and time.time() < deadline:
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)  # cut off inside trial 1
    worker.wait()
    cut = trials(tmp_path / "sweep")
    assert [t.state for t in cut] == [COMPLETE, RUNNING]
    (tmp_path / "stall").unlink()
    result = run_app(*args)
    assert result.returncode == 0, result.output
    assert "trial 1 was cut off with its worker" in result.output
    done = trials(tmp_path / "sweep")
    assert [t.state for t in done] == [COMPLETE] * 3  # 3 in all, not 3 more
    assert done[1].params == cut[1].params


@pytest.mark.parametrize("storage", ["", "journal:shared/optuna.journal",
                                     pytest.param("postgres", marks=pytest.mark.engines)])
def test_two_workers_on_one_study_run_exactly_n_trials_together(tmp_path, storage, request):
    if storage == "postgres":  # a real server, started for this test session (tests/engines.py)
        storage = request.getfixturevalue("postgres_url")
    study = f"workers_{tmp_path.name}"  # a database outlives tmp_path: one study per run
    args = ["hydra.sweeper.n_trials=6", "sleep=0.3", f"hydra.sweeper.study_name={study}"] + (
        [f"hydra.sweeper.storage={storage}"] if storage else [])
    run_workers(tmp_path, *args)
    if storage.startswith("journal:"):
        storage = f"journal:{tmp_path}/shared/optuna.journal"
    done = trials(tmp_path / "sweep", name=study, storage=storage)
    assert [t.number for t in done] == list(range(6)) and all(t.state == COMPLETE for t in done)
    assert sorted(int(p.name) for p in (tmp_path / "sweep").iterdir() if p.name.isdigit()) == \
        list(range(6))



@pytest.mark.parametrize("storage", ["", "journal:shared/optuna.journal"])
def test_two_workers_queue_the_defaults_once_as_trial_0_and_a_rerun_not_again(tmp_path, storage):
    args = ["hydra.sweeper.n_trials=6", "sleep=0.3", "hydra.sweeper.enqueue_defaults=true",
            "hydra/sweeper/sampler=random"] + ([f"hydra.sweeper.storage={storage}"] * bool(storage))
    run_workers(tmp_path, *args)
    storage = storage and f"journal:{tmp_path}/shared/optuna.journal"
    done = trials(tmp_path / "sweep", storage=storage)
    # x's default is 0.0 (conf/task.yaml); a random draw from [-4, 4] is never exactly 0.0
    assert [t.number for t in done] == list(range(6)) and all(t.state == COMPLETE for t in done)
    assert [t.number for t in done if t.params["x"] == 0.0] == [0]
    assert results(tmp_path / "sweep")["defaults"] == {"trial": 0, "params": {"x": 0.0},
                                                       "left_out": {}}
    run_workers(tmp_path, *args[1:], "hydra.sweeper.n_trials=8", n=1)
    again = trials(tmp_path / "sweep", storage=storage)
    assert len(again) == 8 and [t.number for t in again if t.params["x"] == 0.0] == [0]



def test_two_slots_of_one_worker_run_the_defaults_once_as_trial_0(run_app, tmp_path):
    result = run_app("hydra.sweeper.enqueue_defaults=true", "hydra.sweeper.n_trials=4",
                     "hydra/sweeper/sampler=random", "hydra/launcher=joblib",
                     "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2", "sleep=0.3")
    assert result.returncode == 0, result.output
    done = trials(tmp_path / "sweep")  # the first claim takes the queued trial 0 and a new one
    assert [t.number for t in done] == list(range(4)) and all(t.state == COMPLETE for t in done)
    assert [t.number for t in done if t.params["x"] == 0.0] == [0]

def test_a_default_its_space_cannot_hold_is_sampled_and_said(run_app, tmp_path):
    result = run_app("hydra.sweeper.enqueue_defaults=true", "hydra.sweeper.n_trials=2",
                     "y=tag(log, interval(0.1, 1.0))")  # y's default 0.0: no log scale holds it
    assert result.returncode == 0, result.output
    why = "default 0.0 is outside its log range [0.1, 1.0]"
    assert f"y left out (sampled): {why}" in result.output
    first = trials(tmp_path / "sweep")[0]
    assert first.params["x"] == 0.0 and 0.1 <= first.params["y"] <= 1.0
    assert results(tmp_path / "sweep")["defaults"]["left_out"] == {"y": why}

def test_a_storage_that_cannot_be_opened_is_one_line_before_any_job(run_app, tmp_path):
    result = run_app("hydra.sweeper.storage=postgresql://me:secret@127.0.0.1:1/study")
    assert result.returncode != 0
    assert "optsweep: error: hydra.sweeper.storage='postgresql://me:***@127.0.0.1:1/study'" in \
        result.stderr
    assert "Traceback" not in result.output and "secret" not in result.output
    assert not (tmp_path / "sweep" / "0").exists()


def test_motpe_is_a_clear_error_naming_tpe(run_app):
    result = run_app("hydra/sweeper/sampler=motpe")
    assert result.returncode != 0 and "Traceback" not in result.output
    assert "MOTPESampler" in result.stderr and "TPESampler" in result.stderr


def test_the_deprecated_search_space_warns_and_works(run_app, tmp_path):
    result = run_app("--config-name", "legacy")
    assert result.returncode == 0, result.output
    assert "search_space is deprecated" in result.output
    done = trials(tmp_path / "sweep")
    assert len(done) == 3 and all(t.state == COMPLETE and -1 <= t.params["x"] <= 1 for t in done)


def test_the_sweeper_and_report_run_without_torch(tmp_path):
    code = ("import runpy, sys; sys.modules['torch'] = None; "
            f"sys.argv = [{str(APPS / 'task.py')!r}, 'mode=steps', 'hydra.sweeper.n_trials=2']; "
            f"runpy.run_path({str(APPS / 'task.py')!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=app_env(),
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    done = trials(tmp_path / "sweep")
    assert [t.state for t in done] == [COMPLETE] * 2
    assert all(len(t.intermediate_values) == 4 and not math.isnan(t.value) for t in done)
