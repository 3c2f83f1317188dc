"""optsweep's lr search on a real PostgreSQL server: two workers share one study and run exactly
n_trials with pruning; a resumed study finishes; a wrong password or an unreachable server is one
clear line before any job. The server is started by the tests (tests/engines.py)."""

from __future__ import annotations

import re

import optuna
import pytest
from optuna.trial import TrialState

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
