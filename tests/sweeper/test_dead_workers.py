"""Trials whose worker died on another host (a lost node, a killed SLURM job): failed, their setting
re-run once in the same job directory, and n_trials counting distinct settings. A dead trial is
planted in the study as another host's worker would have left it, then the sweep runs."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from .conftest import TIMEOUT_S, app_command, app_env, results, run_workers, trials

COMPLETE, FAIL, RUNNING = TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING
OTHER_HOST = "gpu-node-7"  # not this host: its pids mean nothing here
BEAT = ("hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2")
pytestmark = pytest.mark.usefixtures("schedule")  # each test under slots and batches


def plant(storage, study: str, x: float, state=RUNNING, **system_attrs) -> int:
    """A trial as another host's worker leaves it; returns its trial id."""
    created = optuna.create_study(storage=storage, study_name=study, load_if_exists=True)
    created.add_trial(optuna.trial.create_trial(
        state=state, params={"x": x}, distributions={"x": FloatDistribution(-4.0, 4.0)},
        value=None if state != COMPLETE else (x - 1) ** 2,
        system_attrs={"optsweep_worker": f"{OTHER_HOST}:4242", **system_attrs}))
    number = len(created.trials) - 1
    return storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study), number)


def job_dirs(sweep: Path) -> list:
    return sorted(p.name for p in sweep.iterdir() if p.is_dir())


def ran_trial(job_dir: Path) -> str:
    """The trial number a job directory's last job ran for (its hydra.yaml's job environment)."""
    text = (job_dir / ".hydra" / "hydra.yaml").read_text()
    return text.split("OPTSWEEP_OPTUNA_TRIAL: '")[1].split("'")[0]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(app_command(*args), cwd=tmp_path, env=app_env(), capture_output=True,
                            text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite",
                                    pytest.param("postgres", marks=pytest.mark.engines)])
def test_a_trial_whose_worker_died_on_another_host_is_failed_and_rerun_once_in_its_directory(
        tmp_path, engine, request):
    sweep, study = tmp_path / "sweep", f"dead_{tmp_path.name}"
    sweep.mkdir()
    url = f"sqlite:///{sweep / 'optuna.db'}" if engine == "sqlite" else \
        request.getfixturevalue("postgres_url")
    storage = optuna.storages.RDBStorage(url)
    storage.record_heartbeat(plant(storage, study, x=3.0))  # beat once, then its node was lost
    time.sleep(2.5)  # > grace_period: the beat is stale (the database's clock)
    run(tmp_path, "hydra.sweeper.n_trials=3", f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.storage={url}", *BEAT)
    done = trials(sweep, name=study, storage=url)
    assert [t.state for t in done] == [FAIL, COMPLETE, COMPLETE, COMPLETE]
    dead, rerun = done[0], done[1]
    assert dead.user_attrs["error"].startswith("its worker died: no heartbeat for more than "
                                               "hydra.sweeper.grace_period=2 s")
    assert f"{OTHER_HOST}:4242" in dead.user_attrs["error"]
    assert rerun.params == {"x": 3.0} and rerun.value == 4.0
    assert rerun.system_attrs["failed_trial"] == 0 and rerun.system_attrs["retry_history"] == [0]
    assert job_dirs(sweep) == ["0", "2", "3"] and ran_trial(sweep / "0") == "1"
    assert results(sweep)["retried"] == [{"trial": 1, "failed_trial": 0}]


@pytest.mark.slow
def test_a_rerun_that_dies_again_is_failed_and_not_run_a_third_time(tmp_path):
    sweep, url = tmp_path / "sweep", f"sqlite:///{tmp_path / 'sweep' / 'optuna.db'}"
    sweep.mkdir()
    storage = optuna.storages.RDBStorage(url)
    plant(storage, "optsweep", x=3.0, state=FAIL)
    storage.record_heartbeat(plant(storage, "optsweep", x=3.0, failed_trial=0,
                                   retry_history=[0]))
    time.sleep(2.5)
    run(tmp_path, "hydra.sweeper.n_trials=2", *BEAT)
    done = trials(sweep)
    # trial 0 was re-run as 1, which died too; 1 and 2 are the two distinct settings
    assert [t.state for t in done] == [FAIL, FAIL, COMPLETE]
    assert "no heartbeat" in done[1].user_attrs["error"] and done[2].params != {"x": 3.0}
    assert results(sweep)["retried"] == [{"trial": 1, "failed_trial": 0}]


def test_a_live_trial_of_another_host_is_never_taken(tmp_path):
    sweep, url = tmp_path / "sweep", f"sqlite:///{tmp_path / 'sweep' / 'optuna.db'}"
    sweep.mkdir()
    storage = optuna.storages.RDBStorage(url)
    storage.record_heartbeat(plant(storage, "optsweep", x=3.0))  # fresh: well within 60 s
    run(tmp_path, "hydra.sweeper.n_trials=3", "hydra.sweeper.grace_period=60")
    done = trials(sweep)
    assert [t.state for t in done] == [RUNNING, COMPLETE, COMPLETE]
    assert done[0].system_attrs["optsweep_worker"] == f"{OTHER_HOST}:4242"
    assert job_dirs(sweep) == ["1", "2"]


def test_on_a_journal_a_dead_lease_fails_the_trial_and_a_live_heartbeat_keeps_one(tmp_path):
    sweep, url = tmp_path / "sweep", f"journal:{tmp_path / 'sweep' / 'optuna.journal'}"
    from optuna.storages.journal import JournalFileBackend

    sweep.mkdir()
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "sweep" /
                                                                    "optuna.journal")))
    plant(storage, "optsweep", x=3.0)  # trial 0: its training's lease went silent 5 min ago
    plant(storage, "optsweep", x=-1.0)  # trial 1: its job beats on another host right now
    record = {"owner": "slurm:81_0", "host": OTHER_HOST, "pid": 4242}
    for number, name, extra in ((0, "lease.json", {"renewed": time.time() - 300}),  # stale at 120
                                (1, "heartbeat.json", {"renewed": time.time(), "stale_s": 600})):
        (sweep / str(number)).mkdir()  # the jobs' directories on the shared filesystem
        (sweep / str(number) / name).write_text(json.dumps({**record, **extra}))
    run(tmp_path, "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage={url}")
    done = trials(sweep, storage=url)
    assert [t.state for t in done] == [FAIL, RUNNING, COMPLETE, COMPLETE, COMPLETE]
    assert done[0].user_attrs["error"].startswith("its worker died: lease.json in ")
    assert "by slurm:81_0" in done[0].user_attrs["error"]
    assert done[2].params == {"x": 3.0} and done[2].system_attrs["failed_trial"] == 0
    assert ran_trial(sweep / "0") == "2" and not (sweep / "1" / ".hydra").exists()
    assert job_dirs(sweep) == ["0", "1", "3", "4"]
    # the jobs kept heartbeat.json in their directories: this host's process, now gone
    beat = json.loads((sweep / "3" / "heartbeat.json").read_text())
    assert beat["host"] == socket.gethostname() and beat["stale_s"] == 120.0


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["", "journal:sweep/optuna.journal"])
def test_jobs_that_outlast_the_grace_period_stay_alive_while_two_workers_share_a_study(
        tmp_path, storage):
    # each job sleeps past grace_period (and, on the journal, past dead_after_s, which its claim
    # lasts): only its own beat keeps the other worker from failing it
    args = ["hydra.sweeper.n_trials=4", "sleep=3.5", *BEAT, "hydra.sweeper.dead_after_s=2"] + (
        [f"hydra.sweeper.storage={storage}"] if storage else [])
    run_workers(tmp_path, *args)
    url = f"journal:{tmp_path / 'sweep' / 'optuna.journal'}" if storage else ""
    done = trials(tmp_path / "sweep", storage=url)
    assert [t.state for t in done] == [COMPLETE] * 4
    assert not any("failed_trial" in t.system_attrs for t in done)
    if not storage:  # every job beat in Optuna's own table
        with sqlite3.connect(tmp_path / "sweep" / "optuna.db") as db:
            beats = db.execute("SELECT COUNT(DISTINCT trial_id) FROM trial_heartbeats").fetchone()
        assert beats == (4,)


@pytest.mark.slow
def test_a_trial_whose_worker_died_before_naming_itself_is_run_at_the_next_claim(tmp_path):
    # killed between Optuna's ask and naming itself: RUNNING, no worker, no heartbeat ever. Both
    # happen under the study lock, so the next claim knows it for dead at once and runs it: a rerun
    # right after the kill (a sweep shorter than any wait) neither ends with it RUNNING nor adds one
    sweep, url = tmp_path / "sweep", f"sqlite:///{tmp_path / 'sweep' / 'optuna.db'}"
    sweep.mkdir()
    study = optuna.create_study(storage=url, study_name="optsweep")
    study.add_trial(optuna.trial.create_trial(
        state=RUNNING, params={"x": 3.0}, distributions={"x": FloatDistribution(-4.0, 4.0)}))
    run(tmp_path, "hydra.sweeper.n_trials=3", *BEAT)
    done = trials(sweep)
    assert [t.state for t in done] == [COMPLETE] * 3
    assert done[0].params == {"x": 3.0} and done[0].value == 4.0  # its own setting, run in place
    assert not any("failed_trial" in t.system_attrs for t in done)
    assert job_dirs(sweep) == ["0", "1", "2"] and ran_trial(sweep / "0") == "0"
