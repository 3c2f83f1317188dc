"""python -m optsweep.confirm end to end on a tiny real digits grid (2 settings x 1 seed, 2 epochs);
its choice and its refusals on hand-built run directories and on the simulated workload."""
import importlib.util
import json
import re
from pathlib import Path

import pytest

from optsweep import contract
from optsweep.analysis.load import load_runs
from optsweep.confirm import ConfirmError, chosen_run, new_seeds
from tests.processes import module

TINY = ["data=digits", "model.weights=null", "trainer.epochs=2", "data.train_limit=60",
        "data.test_limit=30", "trainer.progress=false"]
ENV = {"MPLBACKEND": "Agg"}


def run(name: str, *args: str, timeout: float = 600):
    return module(name, *args, env=ENV, timeout=timeout)


def test_new_seeds_skip_the_ones_the_sweep_used():
    assert new_seeds([0], 2) == [1, 2]
    assert new_seeds([0, 2, 3], 3) == [1, 4, 5]


def test_a_path_without_a_finished_run_is_one_error_line(tmp_path):
    missing = run("optsweep.confirm", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    unfinished = tmp_path / "sweep" / "0"
    (unfinished / ".hydra").mkdir(parents=True)
    (unfinished / ".hydra" / "config.yaml").write_text("trainer: {seed: 0}\n")
    (unfinished / "metrics.csv").write_text("epoch,val_acc1\n1,0.5\n")
    none = run("optsweep.confirm", str(tmp_path / "sweep"))
    assert none.returncode == 2 and "no finished run" in none.stderr
    assert len(none.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs the training core")
def test_confirm_reruns_the_chosen_setting_over_new_seeds(tmp_path):
    grid = tmp_path / "multirun" / "grid"
    trained = run("optsweep", "-m", *TINY, "optimizer.lr=1e-3,1e-2", f"hydra.sweep.dir={grid}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    val = {job: json.loads((grid / job / "summary.json").read_text())["final"]["val_acc1"]
           for job in "01"}
    lr = "0.01" if val["1"] > val["0"] else "0.001"  # by final val_acc1; a tie keeps the first

    dry = run("optsweep.confirm", str(grid), "--seeds", "2", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "trainer.seed=1,2" in dry.stdout and "optimizer.lr=" in dry.stdout
    assert not (tmp_path / "multirun" / "grid_confirm").exists()

    confirmed = run("optsweep.confirm", str(grid), "--seeds", "2")
    assert confirmed.returncode == 0, confirmed.stderr[-2000:]
    out = tmp_path / "multirun" / "grid_confirm"
    finals = []
    for job in ("0", "1"):
        summary = json.loads((out / job / "summary.json").read_text())
        assert summary["status"] == "completed"
        overrides = (out / job / ".hydra" / "overrides.yaml").read_text()
        assert f"trainer.seed={int(job) + 1}" in overrides
        finals.append(summary["final"]["test_acc1"])
    config = (out / "0" / ".hydra" / "config.yaml").read_text()
    assert f"  lr: {lr}\n" in config
    printed = re.search(r"test_acc1 over 2 new seed\(s\): ([0-9.]+)", confirmed.stdout)
    assert float(printed.group(1)) == pytest.approx(sum(finals) / 2, abs=5e-5)
    assert (out / "report" / "report.md").is_file()

    before = [(out / job / "summary.json").stat().st_mtime_ns for job in "01"]
    again = run("optsweep.confirm", str(grid), "--seeds", "2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert [(out / job / "summary.json").stat().st_mtime_ns for job in "01"] == before
    assert printed.group(0) in again.stdout


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="needs optuna")
def test_an_optuna_study_is_confirmed_with_its_best_trials_parameters(tmp_path):
    study = tmp_path / "multirun" / "search"
    trained = run("optsweep", "-m", "sweep=lr_search", "optimizer=adam",
                  "hydra.sweeper.n_trials=2", *TINY[:2], "trainer.epochs=1", *TINY[3:],
                  f"hydra.sweep.dir={study}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    val = {job: json.loads((study / job / "summary.json").read_text())["final"]["val_acc1"]
           for job in "01"}
    job = "1" if val["1"] > val["0"] else "0"
    lr = re.search(r"optimizer\.lr=(\S+)", (study / job / ".hydra" / "overrides.yaml").read_text())
    dry = run("optsweep.confirm", str(study), "--seeds", "2", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    command = dry.stdout.splitlines()[-1]
    assert f"optimizer.lr={lr.group(1)} " in command
    # the basic sweeper runs the seeds
    assert "sweep=" not in command.replace("hydra.sweep.dir", "")


# --- which run is chosen, and what is refused ----------------------------------------------------

def write_run(run_dir: Path, lr: float, status: str, val_acc1: list[float]) -> None:
    """A run directory of a grid over optimizer.lr (seed 0) whose epochs end at ``val_acc1``."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(
        f"optimizer: {{lr: {lr}}}\ndata: {{name: digits, val_fraction: 0.1}}\n"
        "trainer: {seed: 0, objective: auto}\n")
    (run_dir / ".hydra" / "overrides.yaml").write_text(f"- optimizer.lr={lr}\n- trainer.seed=0\n")
    rows = [{"epoch": e, "val_acc1": v, "test_acc1": v - 0.01} for e, v in enumerate(val_acc1, 1)]
    (run_dir / "metrics.csv").write_text("epoch,val_acc1,test_acc1\n" + "".join(
        f"{r['epoch']},{r['val_acc1']},{r['test_acc1']}\n" for r in rows))
    (run_dir / "summary.json").write_text(json.dumps(contract.summary(
        contract.Status(status), "val_acc1", rows)))


def test_a_diverged_run_whose_last_epoch_scored_highest_is_never_chosen(tmp_path):
    # lr 0.1 reached 0.85 in its last finished epoch, then diverged: the sweeper scored it 0.0
    write_run(tmp_path / "grid" / "0", 0.01, "completed", [0.6, 0.8])
    write_run(tmp_path / "grid" / "1", 0.1, "diverged", [0.85])
    write_run(tmp_path / "grid" / "2", 0.001, "pruned", [0.9])  # stopped early: not a result
    runset = load_runs([tmp_path / "grid"])
    epochs = runset.metrics[runset.metrics["metric"] == "val_acc1"]
    assert set(epochs.groupby("run")["value"].last()) == {0.8, 0.85, 0.9}  # as recorded
    run, used = chosen_run(runset, "test_acc1", "val_acc1")
    assert (run["run"], run["status"], used) == (str(tmp_path / "grid" / "0"), "completed", [0])


def diverge_on_seed_1(run_dir: Path, lr: float) -> None:
    write_run(run_dir, lr, "diverged", [0.8])
    (run_dir / ".hydra" / "overrides.yaml").write_text(f"- optimizer.lr={lr}\n- trainer.seed=1\n")
    (run_dir / ".hydra" / "config.yaml").write_text(
        f"optimizer: {{lr: {lr}}}\ndata: {{name: digits, val_fraction: 0.1}}\n"
        "trainer: {seed: 1, objective: auto}\n")


def test_a_setting_that_diverged_on_one_seed_is_not_chosen_on_its_other_seeds(tmp_path):
    write_run(tmp_path / "grid" / "0", 0.01, "completed", [0.8])
    write_run(tmp_path / "grid" / "1", 0.1, "completed", [0.9])
    diverge_on_seed_1(tmp_path / "grid" / "2", 0.1)  # lr 0.1's mean over both seeds: 0.85
    run, used = chosen_run(load_runs([tmp_path / "grid"]), "test_acc1", "val_acc1")
    assert run["run"] == str(tmp_path / "grid" / "0") and used == [0, 1]
    diverge_on_seed_1(tmp_path / "grid" / "3", 0.01)  # now every setting diverged once
    with pytest.raises(ConfirmError, match="no setting without a diverged seed"):
        chosen_run(load_runs([tmp_path / "grid"]), "test_acc1", "val_acc1")


def test_a_sweep_where_every_run_diverged_is_one_error_line(tmp_path):
    write_run(tmp_path / "grid" / "0", 0.1, "diverged", [0.85])
    result = run("optsweep.confirm", str(tmp_path / "grid"), "--dry-run")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no finished run the sweeper scored" in result.stderr


SIMULATED = ["workload=simulated", "optimizer=sgd", "simulate.diverge_sd=0"]


@pytest.fixture(scope="module")
def simulated_grid(tmp_path_factory) -> Path:
    """A simulated grid (milliseconds a run): lr 0.12 is past SGD's edge (diverge_lr 0.11) and
    diverges in its last epoch, after an epoch far above lr 0.01's final one."""
    grid = tmp_path_factory.mktemp("simulated") / "grid"
    trained = run("optsweep", "-m", *SIMULATED, "optimizer.lr=0.01,0.12",
                  "simulate.optimizers.sgd.diverge_lr=0.11", f"hydra.sweep.dir={grid}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    return grid


def test_the_simulated_sweeps_diverged_trial_is_not_confirmed(simulated_grid):
    ends = {job: json.loads((simulated_grid / job / "summary.json").read_text())
            for job in "01"}
    assert [ends[j]["status"] for j in "01"] == ["completed", "diverged"]
    assert ends["1"]["final"]["val_acc1"] > ends["0"]["final"]["val_acc1"] + 0.2
    dry = run("optsweep.confirm", str(simulated_grid), "--seeds", "2", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "optimizer.lr=0.01 " in dry.stdout and "optimizer.lr=0.12" not in dry.stdout


@pytest.mark.parametrize("argv, said", [
    (["--select", "test_acc1"], ["--select test_acc1: a test metric", "val_acc1"]),
    (["--select", "val_ac1"], ["--select val_ac1: not a metric", "val_loss, val_acc1, val_acc5"]),
    (["--select", "train_loss"], ["--select train_loss: not a validation metric"]),
    (["--metric", "test_ac1"], ["--metric test_ac1: not a metric", "test_acc1"]),
])
def test_a_selection_off_validation_or_an_unknown_metric_is_one_line(simulated_grid, argv, said):
    result = run("optsweep.confirm", str(simulated_grid), *argv)
    (line,) = result.stderr.strip().splitlines()
    assert result.returncode == 2 and all(s in line for s in said), line
    assert not simulated_grid.with_name("grid_confirm").exists()


def test_a_sweep_without_a_validation_split_is_not_confirmed(tmp_path):
    grid = tmp_path / "noval"
    trained = run("optsweep", "-m", *SIMULATED, "optimizer.lr=0.01,0.1", "data.val_fraction=0",
                  f"hydra.sweep.dir={grid}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    result = run("optsweep.confirm", str(grid))
    (line,) = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "objective is test_acc1" in line
    assert "data.val_fraction above 0" in line and not (tmp_path / "noval_confirm").exists()
