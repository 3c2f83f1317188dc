"""Sweeps on a real single-node SLURM cluster (started by the tests, tests/engines.py) through
hydra/launcher=slurm: a grid completes; a job preempted mid-run is requeued and resumes from its
checkpoint, losing at most the epoch in progress; an Optuna study is shared through a journal
file in the sweep directory; a benchmark runs its one pool of slots as SLURM jobs."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optsweep import contract
from optsweep.rundir import BenchmarkDir, RunDir
from tests.conftest import QUICK

pytestmark = pytest.mark.engines  # a real PostgreSQL server or SLURM cluster

TIMEOUT_S = 420
# the node is this 2-core machine: no GPU, one core and 1 GB per job
ON_THE_NODE = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0",
               "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
               "hydra.launcher.timeout_min=30", "hydra.launcher.partition=debug"]


def optsweep(*args: str, cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "optsweep", "-m", *args, *ON_THE_NODE],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, (out + err)[-3000:]
    return out + err


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / contract.METRICS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def slurm(env: dict, *command: str) -> str:
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                          timeout=60).stdout


def test_a_grid_runs_as_slurm_jobs(tmp_path, slurm_env):
    sweep = tmp_path / "grid"
    finish(optsweep(*QUICK, "optimizer=adam,sgd", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
                    env=slurm_env))
    for job in ("0", "1"):
        assert RunDir(sweep / job).summary()["status"] == "completed"
    assert list((sweep / ".submitit").glob("*/*_log.out"))  # each ran as a SLURM job


def test_a_preempted_job_is_requeued_and_resumes_losing_at_most_one_epoch(tmp_path, slurm_env):
    sweep = tmp_path / "preempted"
    run_dir = sweep / "0"
    # every digit (about 3 s an epoch on one core): the job must still be training when SLURM
    # kills it, KillWait (5 s) after the SIGTERM that submitit ignores
    slow = [o for o in QUICK if not o.startswith(("trainer.epochs", "data.train_limit",
                                                   "data.batch_size"))]
    launcher = optsweep(*slow, "data.batch_size=64", "trainer.epochs=12", "optimizer=adam",
                        f"hydra.sweep.dir={sweep}", cwd=tmp_path, env=slurm_env)
    deadline = time.monotonic() + TIMEOUT_S
    while not ((run_dir / contract.CHECKPOINT_FILE).exists() and len(rows(run_dir)) >= 2):
        assert launcher.poll() is None and time.monotonic() < deadline, "no epoch was written"
        time.sleep(0.2)
    job_id = slurm(slurm_env, "squeue", "-h", "-o", "%i").split()[0]
    seen = len(rows(run_dir))
    slurm(slurm_env, "scontrol", "requeue", job_id)  # as a preemption does: kill, then queue again
    while "PENDING" not in slurm(slurm_env, "scontrol", "show", "job", job_id):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # a requeued job waits for a begin time in the future: let it start now
    slurm(slurm_env, "scontrol", "update", f"JobId={job_id}", "StartTime=now")
    finish(launcher)
    assert RunDir(run_dir).summary()["status"] == "completed"
    assert [int(r["epoch"]) for r in rows(run_dir)] == list(range(1, 13))
    log = (run_dir / "optsweep.log").read_text()
    resumed = re.search(r"resumed from \S+ after epoch (\d+)", log)
    assert resumed, log  # the requeued job resumed from the checkpoint, not from scratch
    assert 12 > int(resumed.group(1)) >= seen  # only the epoch in progress was lost


def test_an_optuna_study_shared_through_a_journal_in_the_sweep_directory(tmp_path, slurm_env):
    sweep = tmp_path / "search"
    journal = sweep / "optuna.journal"
    finish(optsweep("sweep=lr_search", *[o for o in QUICK if not o.startswith("trainer.epochs")],
                    "trainer.epochs=2", f"hydra.sweep.dir={sweep}",
                    f"hydra.sweeper.storage=journal:{journal}", "hydra.sweeper.n_trials=2",
                    "hydra.sweeper.n_jobs=2", "hydra/sweeper/pruner=nop", cwd=tmp_path,
                    env=slurm_env))
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="lr_search_adam", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for trial in study.trials:  # each SLURM job reported its epochs to the journal
        assert sorted(trial.intermediate_values) == [1, 2]
        assert trial.value == RunDir(sweep / str(trial.number)).summary()["objective"]


def test_a_benchmark_runs_its_one_pool_as_slurm_jobs_with_exact_counts(tmp_path, slurm_env):
    # every study's trials, both confirmations and the defaults: one submitit job per run, two
    # at a time, from one benchmark process
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "optsweep.benchmark", f"dir={out}", "workloads=[simulated]",
         "optimizers=[adam,sgd]", "space=lr_only", "budget=3", "seeds=2", "trainer.epochs=2",
         "hydra.sweeper.n_jobs=2", *ON_THE_NODE], cwd=tmp_path, env=slurm_env,
        capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    folder = BenchmarkDir(out)
    for optimizer in ("adam", "sgd"):
        study = folder.study_dir("simulated", optimizer)
        storage = f"sqlite:///{study / contract.OPTUNA_DB_FILE}"
        (name,) = optuna.get_all_study_names(storage)
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 3  # the budget, exactly
        confirmation = folder.confirm_dir("simulated", optimizer)
        assert sorted(p.name for p in confirmation.glob("[0-9]*")) == ["0", "1"]
    sweeps = [*(folder.study_dir("simulated", o) for o in ("adam", "sgd")),
              *(folder.confirm_dir("simulated", o) for o in ("adam", "sgd")),
              folder.defaults_dir("simulated")]
    runs = [job for sweep in sweeps for job in sweep.glob("[0-9]*")]
    assert len(runs) == 3 * 2 + 2 * 2 + 2 * 2
    assert all(RunDir(job).status() == contract.Status.COMPLETED for job in runs)
    for sweep in sweeps:  # each run was a SLURM job of its own sweep's submitit folder
        assert len(list((sweep / ".submitit").glob("*/*_log.out"))) == \
            len(list(sweep.glob("[0-9]*")))
    assert (folder.report_dir / "report.html").is_file()
