"""Slots, not batches: a trial's end starts the next trial at once, in the freed slot, with its
start and end in the study when its job started and ended; exact counts with several workers that
each run slots; a sweep killed at any moment and rerun finishes with no setting asked twice; what
a user reads (one line per trial end, no Hydra error for a prune, no internal overrides); a search
space Optuna refuses is one line before any job."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import types
from pathlib import Path

import pytest
from optuna.trial import TrialState

from optsweep import lease
from optsweep.sweep import process_pool, runners, slots, trial

from .conftest import TIMEOUT_S, app_command, app_env, results, run_workers, trials

COMPLETE, PRUNED = TrialState.COMPLETE, TrialState.PRUNED
POOL = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2")


def slot_of(sweep: Path, number: int) -> str:
    return (sweep / str(number) / "slot").read_text()


@pytest.mark.slow
def test_a_freed_slot_starts_the_next_trial_while_the_slow_one_runs(run_app, tmp_path):
    result = run_app(*POOL, "hydra.sweeper.n_trials=5", "slow_trial=0", "slow_s=6")
    assert result.returncode == 0, result.output
    sweep = tmp_path / "sweep"
    slow, *fast = trials(sweep)
    assert all(t.state == COMPLETE for t in [slow, *fast])
    # every fast trial started and ended while the slow one ran, one after another in the other
    # slot, and each one's end in the study is its own job's end, not the slow one's
    assert all(t.datetime_complete < slow.datetime_complete for t in fast)
    for t in (slow, *fast):  # told within a poll of the task's return, not at a batch's end
        returned = float((sweep / str(t.number) / "ended").read_text())
        assert 0.0 <= t.datetime_complete.timestamp() - returned < 1.5
    assert slow.duration.total_seconds() >= 6.0
    assert slot_of(sweep, 0) != slot_of(sweep, 1) and {slot_of(sweep, t.number) for t in fast} \
        == {slot_of(sweep, 1)}  # the freed slot (and its GPU) got each next trial
    slot_time = results(sweep)["slot_time"]
    assert slot_time["slots"] == 2 and slot_time["busy_slot_s"] > 6.0
    ends = [line for line in result.output.splitlines() if " COMPLETE, value " in line]
    assert len(ends) == 5 and "of 2 slots busy" in ends[0]
    assert "slot time: 2 slots" in result.output


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: no slot has one to lend")
@pytest.mark.parametrize("lend", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_in_the_final_drain_idle_slots_lend_their_cores_to_the_trial_still_running(
        run_app, tmp_path, lend):
    result = run_app(*POOL, "hydra.sweeper.n_trials=3", "slow_trial=0", "slow_s=4",
                     f"hydra.sweeper.lend_cores={lend}")
    assert result.returncode == 0, result.output
    sweep, cores = tmp_path / "sweep", len(os.sched_getaffinity(0))
    slot_time = results(sweep)["slot_time"]
    # trials 1 and 2 end in the other slot while trial 0 sleeps: then nothing is left to start,
    # and trial 0, alone on the machine, is lent all of its cores (2 slots: 1 share of 2)
    assert not (sweep / "1" / "cores").exists() and not (sweep / "2" / "cores").exists()
    if not lend:
        assert not (sweep / "0" / "cores").exists() and slot_time["lent_slot_s"] == 0.0
        return
    assert (sweep / "0" / "cores").read_text().split() == [str(cores)]
    assert f"trial 0: lent {cores} cores (nothing left to start" in result.output
    assert 0.0 < slot_time["lent_slot_s"] <= slot_time["drain_idle_slot_s"]
    assert "lent to running trials" in result.output


def test_slot_time_counts_busy_idle_drain_and_lent_slot_seconds(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(slots.time, "monotonic", lambda: now[0])
    clock = slots.SlotTime(2)
    clock.launched()
    clock.launched()  # t=0: both slots busy
    now[0] = 4.0
    clock.ended()  # t=4: one trial ends, nothing is left to start
    clock.lent(1)  # its idle slot's cores go to the other trial
    now[0] = 10.0
    clock.ended()
    # by hand: busy 2 x 4 + 1 x 6 = 14; idle 1 x 6, all of it after the last launch and lent
    assert clock.summary() == {"slots": 2, "wall_s": 10.0, "busy_slot_s": 14.0,
                               "idle_slot_s": 6.0, "drain_idle_slot_s": 6.0, "lent_slot_s": 6.0}


def test_a_pool_lends_idle_cores_in_the_drain_and_takes_them_back_when_a_trial_starts(
        monkeypatch):
    sent = []
    monkeypatch.setattr(process_pool.os, "kill", lambda pid, signum: sent.append((pid, signum)))
    pool = process_pool.ProcessPool.__new__(process_pool.ProcessPool)  # its state, no processes

    class Cores:
        value = 0

    pool.slots, pool.cores, pool.lend_cores, pool.allotted = 3, 6, True, {}
    pool.workers = [process_pool._Worker(types.SimpleNamespace(pid=100 + s), None, Cores(), set())
                    for s in range(3)]
    pool.running = {0: runners.Job(4, (), ""), 1: runners.Job(5, (), "")}
    pool.allotted = {0: 2, 1: 2}  # each took its share: 6 cores / 3 slots
    assert pool.lend(nothing_to_start=False) == 0 and sent == []  # a trial may still come
    assert pool.lend(nothing_to_start=True) == 1  # slot 2 idles for good: 6 cores / 2 trials
    assert [w.cores.value for w in pool.workers[:2]] == [3, 3]
    assert sent == [(100, process_pool.LEND_SIGNAL), (101, process_pool.LEND_SIGNAL)]
    assert pool.lend(nothing_to_start=True) == 1 and len(sent) == 2  # told once
    pool.running[2], pool.allotted[2] = runners.Job(6, (), ""), 2  # a re-run started after all
    assert pool.lend(nothing_to_start=False) == 0
    assert [w.cores.value for w in pool.workers[:2]] == [2, 2] and len(sent) == 4


def test_an_offer_of_cores_reaches_the_current_jobs_callback_only():
    got = []
    trial.forget_cores()
    trial.lend_cores(4)  # the signal came before the job registered: handed over when it does
    trial.on_lent_cores(got.append)
    trial.lend_cores(2)
    assert got == [4, 2]
    trial.forget_cores()  # the worker's next job
    trial.lend_cores(8)
    assert got == [4, 2]


def test_a_pruned_trial_is_not_an_error_and_job_lines_show_parameters(run_app, tmp_path):
    result = run_app(*POOL, "mode=steps", "hydra.sweeper.n_trials=6",
                     "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=1.0")
    assert result.returncode == 0, result.output
    assert PRUNED in {t.state for t in trials(tmp_path / "sweep")}
    assert "Error executing job" not in result.output
    assert "OPTSWEEP_OPTUNA" not in result.output and "Heartbeat of storage" not in result.output
    (line,) = [x for x in result.output.splitlines() if "trial 0: " in x]
    assert "x=" in line and "mode=steps" not in line  # what it drew; every trial has the rest


@pytest.mark.slow
def test_a_job_whose_process_dies_fails_its_trial_only_and_its_slot_goes_on(run_app, tmp_path):
    result = run_app(*POOL, "mode=die", "hydra.sweeper.n_trials=4",
                     "hydra.sweeper.max_failure_rate=1.0")
    assert result.returncode == 0, result.output
    done = trials(tmp_path / "sweep")
    assert [t.state for t in done] == [COMPLETE, TrialState.FAIL, COMPLETE, COMPLETE]
    assert done[1].user_attrs["error"] == "its job's process died (exit code -9)"


def test_a_launcher_without_a_runner_gets_batches_and_says_so(run_app, tmp_path):
    result = run_app("hydra.launcher._target_=hydra_plugins.batch_only_launcher.BatchOnlyLauncher",
                     "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=3")
    assert result.returncode == 0, result.output
    assert result.output.count("runs batches only") == 1
    assert [t.state for t in trials(tmp_path / "sweep")] == [COMPLETE] * 3
    assert "slot_time" not in results(tmp_path / "sweep")


@pytest.mark.parametrize("storage", ["", "journal:shared/optuna.journal",
                                     pytest.param("postgres", marks=pytest.mark.engines)])
def test_two_workers_with_two_slots_each_run_exactly_n_trials(tmp_path, storage, request):
    if storage == "postgres":
        storage = request.getfixturevalue("postgres_url")
    study = f"slots_{tmp_path.name}"
    run_workers(tmp_path, *POOL, "hydra.sweeper.n_trials=8", "sleep=0.3",
                f"hydra.sweeper.study_name={study}",
                *([f"hydra.sweeper.storage={storage}"] if storage else []))
    if storage.startswith("journal:"):
        storage = f"journal:{tmp_path}/shared/optuna.journal"
    done = trials(tmp_path / "sweep", name=study, storage=storage)
    assert [t.number for t in done] == list(range(8)) and all(t.state == COMPLETE for t in done)
    workers = {t.system_attrs["optsweep_worker"] for t in done}
    assert len(workers) == 2  # both workers ran trials


@pytest.mark.slow
def test_a_sweep_killed_at_a_random_moment_and_rerun_asks_no_setting_twice(tmp_path):
    args = (*POOL, "hydra.sweeper.n_trials=8", "sleep=0.6")
    worker = subprocess.Popen(app_command(*args), cwd=tmp_path, env=app_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sweep = tmp_path / "sweep"
    deadline = time.time() + TIMEOUT_S
    while not list(sweep.glob("*/pid")) and time.time() < deadline:
        time.sleep(0.1)  # the first job started
    time.sleep(random.uniform(0.0, 3.0))
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    pids = [int(p.read_text()) for p in sweep.glob("*/pid")]
    deadline = time.time() + 10
    while not all(lease.process_gone(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert all(lease.process_gone(pid) for pid in pids)  # its slots' workers stopped with it
    rerun = subprocess.run(app_command(*args), cwd=tmp_path, env=app_env(), capture_output=True,
                           text=True, timeout=TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    done = trials(sweep)
    assert len(done) == 8 and all(t.state == COMPLETE for t in done)
    assert len({t.params["x"] for t in done}) == 8  # no setting asked, so none trained, twice


@pytest.mark.parametrize("space, why", [("interval(1, 0)", "low <= high"),
                                        ("tag(log, interval(0, 1))", "low > 0"),
                                        ("range(1, 0)", "low <= high")])
def test_a_search_space_optuna_refuses_is_one_line_before_any_job(run_app, tmp_path, space, why):
    result = run_app(f"x={space}")
    assert result.returncode == 2 and "Traceback" not in result.output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("optsweep: error:")]
    assert line.startswith("optsweep: error: hydra.sweeper.params.x=") and why in line
    assert not (tmp_path / "sweep" / "0").exists()


def test_a_bad_search_space_under_a_process_pool_stops_its_started_workers(run_app, tmp_path):
    started = time.monotonic()
    result = run_app(*POOL, "x=interval(1, 0)", "hydra.sweeper.preload=[optuna]")
    assert result.returncode == 2 and "hydra.sweeper.params.x=" in result.stderr
    assert time.monotonic() - started < 30 and not (tmp_path / "sweep" / "0").exists()


@pytest.mark.parametrize("preload, imported", [("[wave]", "True"), ("[]", "False")])
def test_preloaded_modules_are_imported_in_each_worker_before_its_first_trial(
        run_app, tmp_path, preload, imported):
    result = run_app(*POOL, "hydra.sweeper.n_trials=2", f"hydra.sweeper.preload={preload}",
                     "probe_module=wave")
    assert result.returncode == 0, result.output
    sweep = tmp_path / "sweep"
    assert {slot_of(sweep, n) for n in (0, 1)} == {"0", "1"}  # each in its own worker
    assert [(sweep / str(n) / "probed").read_text() for n in (0, 1)] == [imported, imported]


def test_a_preload_that_cannot_be_imported_is_one_line_before_any_job(run_app, tmp_path):
    result = run_app(*POOL, "hydra.sweeper.preload=[no_such_module.job]")
    assert result.returncode == 2 and "Traceback" not in result.output
    assert "optsweep: error: hydra.sweeper.preload: no module named 'no_such_module.job'" in \
        result.stderr
    assert not (tmp_path / "sweep" / "0").exists()


def test_a_schedule_that_is_neither_slots_nor_batches_is_refused(run_app):
    result = run_app("hydra.sweeper.schedule=waves")
    assert result.returncode == 2 and "hydra.sweeper.schedule=waves" in result.stderr


@pytest.mark.slow
def test_submitits_local_launcher_runs_slots(run_app, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = run_app("hydra/launcher=submitit_local", "hydra.sweeper.n_jobs=2",
                     "hydra.sweeper.n_trials=3", "mode=steps", "hydra.launcher.timeout_min=5")
    assert result.returncode == 0, result.output
    done = trials(tmp_path / "sweep")
    assert [t.state for t in done] == [COMPLETE] * 3
    assert all(sorted(t.intermediate_values) == [0, 1, 2, 3] for t in done)
    assert "submitit job" in result.output and "slot_time" in results(tmp_path / "sweep")
