"""optsweep's lr search on a real PostgreSQL server: two workers share one study and run exactly
n_trials with pruning; a resumed study finishes; a wrong password or an unreachable server is one
clear line before any job; two benchmark processes on one storage finish one benchmark between
them. The server is started by the tests (tests/engines.py)."""

from __future__ import annotations

import re

import optuna
import pytest
from optuna.trial import TrialState

from optsweep import contract
from optsweep.rundir import BenchmarkDir, RunDir
from tests import processes
from tests.test_sweeps_cli import FEW, ONE_EPOCH, TIMEOUT_S, optsweep, start, summary

pytestmark = pytest.mark.engines  # a real PostgreSQL server or SLURM cluster


def lr_search(url: str, name: str, *more: str) -> tuple:
    return ("-m", "sweep=lr_search", f"hydra.sweeper.storage={url}",
            f"hydra.sweeper.study_name={name}", *more)


def test_two_workers_share_a_postgres_study_with_pruning_and_a_rerun_adds_nothing(
        tmp_path, postgres_url):
    args = lr_search(postgres_url, "pg_two_workers", *FEW, "trainer.epochs=2",
                     "hydra.sweeper.n_trials=4", "hydra/sweeper/pruner=threshold",
                     "hydra.sweeper.pruner.upper=-1.0")  # every accuracy is above: all pruned
    workers = [start(*args, cwd=tmp_path) for _ in range(2)]
    assert [w.wait(timeout=TIMEOUT_S) for w in workers] == [0, 0]
    study = optuna.load_study(study_name="pg_two_workers", storage=postgres_url)
    numbers = sorted(t.number for t in study.trials)
    assert numbers == [0, 1, 2, 3]  # exactly n_trials between the two workers
    sweep_dir = tmp_path / "multirun" / "lr_search" / "adam"
    for trial in study.trials:  # reported by each job to the server, pruned after epoch 1
        assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [1]
        assert summary(sweep_dir / str(trial.number))["status"] == "pruned"
    again = optsweep(*args, cwd=tmp_path)  # n_trials is the study's total: nothing more to run
    assert again.returncode == 0, again.stderr
    assert len(optuna.load_study(study_name="pg_two_workers", storage=postgres_url).trials) == 4


def test_a_wrong_password_or_an_unreachable_server_is_one_line_before_any_job(
        tmp_path, postgres_url):
    wrong = postgres_url.replace(":s3cret-pw@", ":wrong@")
    closed = re.sub(r":\d+/", ":1/", postgres_url)  # nothing listens on port 1
    for url in (wrong, closed):
        result = optsweep(*lr_search(url, "pg_bad", *ONE_EPOCH), cwd=tmp_path)
        assert result.returncode != 0
        (line,) = [x for x in result.stderr.splitlines() if x.startswith("optsweep: error:")]
        assert "hydra.sweeper.storage=" in line and "cannot be opened" in line
        assert "wrong" not in result.stderr and "s3cret" not in result.stderr  # masked
        assert "Traceback" not in result.stderr
        assert not list(tmp_path.glob("multirun/**/.hydra"))


def test_two_benchmark_processes_on_one_postgres_storage_finish_one_benchmark_between_them(
        tmp_path, postgres_url):
    # one command started twice on one folder and one storage, as on two machines: the studies
    # share their trials (the budget, exactly), every run is trained by one of them only, and
    # each waits for the other's trials before it confirms
    out = tmp_path / "bench"
    argv = ("-m", "optsweep.benchmark", f"dir={out}", "name=pg_pool", "workloads=[simulated]",
            "optimizers=[adam,sgd]", "space=lr_only", "budget=4", "seeds=2", "trainer.epochs=4",
            "simulate.epoch_seconds=0.3", f"hydra.sweeper.storage={postgres_url}")
    machines = [processes.start(*argv, env={"MPLBACKEND": "Agg"}) for _ in range(2)]
    assert [m.wait(timeout=TIMEOUT_S) for m in machines] == [0, 0]
    folder = BenchmarkDir(out)
    workers = set()
    for optimizer in ("adam", "sgd"):
        trials = optuna.load_study(study_name=f"pg_pool_simulated_{optimizer}",
                                   storage=postgres_url).trials
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
        workers |= {t.system_attrs["optsweep_worker"] for t in trials}
    assert len(workers) == 2  # both took trials
    runs = [job for sweep in (folder.study_dir("simulated", "adam"),
                              folder.study_dir("simulated", "sgd"),
                              folder.confirm_dir("simulated", "adam"),
                              folder.confirm_dir("simulated", "sgd"),
                              folder.defaults_dir("simulated"))
            for job in sweep.glob("[0-9]*")]
    assert len(runs) == 4 * 2 + 2 * 2 + 2 * 2
    for run in runs:  # trained once: one first epoch in its log, whoever's job reached it
        assert RunDir(run).status() == contract.Status.COMPLETED
        assert (run / "optsweep.log").read_text().count("epoch 1/4 ") == 1, run
