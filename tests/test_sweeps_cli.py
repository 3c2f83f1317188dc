"""`python -m optsweep -m ...` sweeps as a user runs them: grids, failures, Optuna with pruning,
killed and resumed sweeps, two workers on one study, a bad storage URL. Each job trains 1-3 epochs
on a few dozen digits."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from tests import processes
from tests.conftest import QUICK
from tests.processes import optsweep

ONE_EPOCH = QUICK
FEW = [o for o in QUICK if not o.startswith("trainer.epochs")]  # set trainer.epochs yourself
TIMEOUT_S = 300


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return processes.start("-m", "optsweep", *args, cwd=cwd)


def kill_when(path: Path, process: subprocess.Popen) -> None:
    """SIGKILL ``process`` (as a machine that stops would) as soon as ``path`` exists."""
    deadline = time.monotonic() + TIMEOUT_S
    while not path.exists():
        assert process.poll() is None, f"the sweep ended before {path} appeared"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    process.kill()
    process.wait()


def rows(job_dir: Path) -> list[dict]:
    with open(job_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def summary(job_dir: Path) -> dict:
    return json.loads((job_dir / "summary.json").read_text())


def stamps(job_dir: Path) -> dict:
    return {name: (job_dir / name).stat().st_mtime_ns for name in ("metrics.csv", "summary.json")}


def study_trials(sweep_dir: Path, name: str = "lr_search_adam") -> list:
    return optuna.load_study(study_name=name,
                             storage=f"sqlite:///{sweep_dir / 'optuna.db'}").trials


@pytest.mark.slow
def test_design_card_grid_runs_three_jobs_with_their_weight_decays(tmp_path):
    result = optsweep("-m", "optimizer=adam", "optimizer.weight_decay=0,1e-4,1e-3", *ONE_EPOCH,
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (sweep_dir,) = (tmp_path / "multirun").iterdir()
    jobs = sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    assert [p.name for p in jobs] == ["0", "1", "2"]
    decays = [OmegaConf.load(j / ".hydra" / "config.yaml").optimizer.weight_decay for j in jobs]
    assert decays == [0, 1e-4, 1e-3]
    for job_dir in jobs:
        assert summary(job_dir)["status"] == "completed" and len(rows(job_dir)) == 1
        assert str(job_dir.relative_to(tmp_path)) in result.stdout  # the summary names each run
    table = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert [r["status"] for r in table] == ["completed"] * 3


@pytest.mark.slow
def test_one_invalid_value_fails_its_job_only_and_the_exit_status(tmp_path):
    result = optsweep("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                      "optimizer.weight_decay=0,-1,1e-3", *ONE_EPOCH, "hydra.sweep.dir=multirun/wd",
                      cwd=tmp_path)
    assert result.returncode == 1
    sweep_dir = tmp_path / "multirun" / "wd"
    statuses = [summary(sweep_dir / str(i))["status"] for i in range(3)]
    assert statuses == ["completed", "failed", "completed"]
    message = "optimizer.weight_decay=-1 is invalid"
    assert message in summary(sweep_dir / "1")["error"]
    table = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert [r["status"] for r in table] == statuses and message in table[1]["error"]
    assert "failed jobs:" in result.stdout and message in result.stdout
    # two jobs at once on this machine's cores: each job took its share of torch threads
    assert "parallel jobs on" in (sweep_dir / "0" / "optsweep.log").read_text()


@pytest.mark.slow
def test_optuna_sweep_killed_and_rerun_finishes_its_trials_resuming_the_cut_one(tmp_path):
    args = ("-m", "sweep=lr_search", *FEW, "trainer.epochs=3", "hydra.sweeper.n_trials=3",
            "hydra/sweeper/pruner=nop")
    sweep_dir = tmp_path / "multirun" / "lr_search" / "adam"
    kill_when(sweep_dir / "1" / "checkpoint.pt", start(*args, cwd=tmp_path))
    done_before, cut_rows = stamps(sweep_dir / "0"), rows(sweep_dir / "1")
    assert [t.state for t in study_trials(sweep_dir)] == [TrialState.COMPLETE, TrialState.RUNNING]

    result = optsweep(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trials = study_trials(sweep_dir)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3  # 3 in all, not 3 more
    assert all(math.isfinite(t.value) for t in trials)
    assert stamps(sweep_dir / "0") == done_before  # the finished trial was not touched
    resumed = rows(sweep_dir / "1")
    assert len(resumed) == 3 and resumed[:len(cut_rows)] == cut_rows
    assert "resumed from" in (sweep_dir / "1" / "optsweep.log").read_text()
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1", "2"]


@pytest.mark.slow
def test_a_pruner_that_must_prune_stops_trials_after_one_epoch(tmp_path):
    # an accuracy can never reach 2.0: the threshold pruner must stop every trial at its first check
    result = optsweep("-m", "sweep=lr_search", *FEW, "trainer.epochs=3", "hydra.sweeper.n_trials=2",
                      "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=2.0",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # pruned is a result, not a failure
    sweep_dir = tmp_path / "multirun" / "lr_search" / "adam"
    for trial in study_trials(sweep_dir):
        assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [1]
        job_dir = sweep_dir / str(trial.number)
        assert summary(job_dir)["status"] == "pruned" and len(rows(job_dir)) == 1
        assert summary(job_dir)["epochs_planned"] == 3
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert [p.last_step for p in results.pruned] == [1, 1]


@pytest.mark.slow
def test_grid_killed_and_rerun_skips_finished_jobs_and_resumes_the_cut_one(tmp_path):
    args = ("-m", "optimizer.weight_decay=0,1e-4,1e-3", *FEW, "trainer.epochs=3",
            "hydra.sweep.dir=multirun/resume")
    sweep_dir = tmp_path / "multirun" / "resume"
    kill_when(sweep_dir / "1" / "checkpoint.pt", start(*args, cwd=tmp_path))
    done_before, cut_rows = stamps(sweep_dir / "0"), rows(sweep_dir / "1")

    result = optsweep(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert stamps(sweep_dir / "0") == done_before  # not retrained
    resumed = rows(sweep_dir / "1")
    assert len(resumed) == 3 and resumed[:len(cut_rows)] == cut_rows
    assert "resumed from" in (sweep_dir / "1" / "optsweep.log").read_text()
    assert [summary(sweep_dir / str(i))["status"] for i in range(3)] == ["completed"] * 3


@pytest.mark.slow
def test_two_workers_on_one_sqlite_study_run_exactly_n_trials(tmp_path):
    args = ("-m", "sweep=lr_search", *ONE_EPOCH, "hydra.sweeper.n_trials=4",
            "hydra/sweeper/pruner=nop")
    workers = [start(*args, cwd=tmp_path) for _ in range(2)]
    assert [w.wait(timeout=TIMEOUT_S) for w in workers] == [0, 0]
    sweep_dir = tmp_path / "multirun" / "lr_search" / "adam"
    trials = study_trials(sweep_dir)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for number in range(4):
        assert summary(sweep_dir / str(number))["status"] == "completed"


@pytest.mark.slow
def test_storage_that_cannot_be_opened_is_one_error_before_any_job(tmp_path):
    result = optsweep("-m", "sweep=lr_search", *ONE_EPOCH,
                      "hydra.sweeper.storage=postgresql://me:secret@127.0.0.1:1/study",
                      cwd=tmp_path)
    assert result.returncode != 0
    assert "optsweep: error: hydra.sweeper.storage=" in result.stderr
    assert "Traceback" not in result.stderr and "secret" not in result.stderr
    assert not list(tmp_path.glob("multirun/**/.hydra"))


@pytest.mark.slow
def test_lr_search_on_a_loss_objective_minimises_it(tmp_path):
    result = optsweep("-m", "sweep=lr_search", *ONE_EPOCH, "trainer.objective=val_loss",
                      "hydra.sweeper.n_trials=3", "hydra/sweeper/pruner=nop", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sweep_dir = tmp_path / "multirun" / "lr_search" / "adam"
    study = optuna.load_study(study_name="lr_search_adam",
                              storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    values = {t.number: t.value for t in study.trials}
    assert study.best_value == min(values.values())  # the lowest validation loss is the best
    for number, value in values.items():
        assert value == summary(sweep_dir / str(number))["final"]["val_loss"]


@pytest.mark.slow
def test_a_direction_against_the_objective_is_refused_before_any_job(tmp_path):
    result = optsweep("-m", "sweep=lr_search", *ONE_EPOCH, "trainer.objective=val_loss",
                      "hydra.sweeper.direction=maximize", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("optsweep: error:")]
    assert "hydra.sweeper.direction=maximize contradicts trainer.objective=val_loss" in line
    assert "Traceback" not in result.stderr and not list(tmp_path.glob("multirun/**/.hydra"))


@pytest.mark.slow
def test_optsweeps_trials_are_complete_failed_or_diverged_in_optunas_terms(tmp_path):
    # a grid over a good lr, an invalid one (the job fails) and one that diverges
    result = optsweep("-m", "sweep=lr_search", *ONE_EPOCH, "hydra/sweeper/sampler=grid",
                      "hydra/sweeper/pruner=nop", "optimizer.lr=choice(1e-3,-1,1e6)",
                      cwd=tmp_path)
    assert result.returncode == 1  # a job failed: the sweep went on, then says so
    sweep_dir = tmp_path / "multirun" / "lr_search" / "adam"
    by_lr = {t.params["optimizer.lr"]: t for t in study_trials(sweep_dir)}
    good = summary(sweep_dir / str(by_lr[1e-3].number))
    assert by_lr[1e-3].state == TrialState.COMPLETE and good["status"] == "completed"
    assert by_lr[1e-3].value == good["final"]["val_acc1"]
    assert by_lr[-1].state == TrialState.FAIL  # never a COMPLETE at the worst value
    assert "optimizer.lr=-1" in by_lr[-1].user_attrs["error"]
    assert by_lr[1e6].state == TrialState.COMPLETE and by_lr[1e6].value == 0.0  # worst value
    assert summary(sweep_dir / str(by_lr[1e6].number))["status"] == "diverged"


@pytest.mark.slow
def test_n_trials_below_one_is_an_error_not_an_empty_success(tmp_path):
    for n in ("0", "-3"):
        result = optsweep("-m", "sweep=lr_search", *ONE_EPOCH, f"hydra.sweeper.n_trials={n}",
                          f"hydra.sweep.dir=multirun/n{n}", cwd=tmp_path)
        assert result.returncode != 0
        assert f"optsweep: error: hydra.sweeper.n_trials={n} is invalid" in result.stderr
        assert "Traceback" not in result.stderr
