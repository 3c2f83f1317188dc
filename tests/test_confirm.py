"""python -m optsweep.confirm end to end on a tiny real digits grid (2 settings x 1 seed, 2 epochs)."""
import importlib.util
import json
import re

import pytest

from optsweep.confirm import new_seeds
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
    assert "sweep=" not in command.replace("hydra.sweep.dir", "")  # the basic sweeper runs the seeds
