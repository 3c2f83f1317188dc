"""Helpers for the sweeper's tests: run a small Hydra app of tests/sweeper/apps as a user does
(``python app.py -m ...`` in a fresh directory) and read what it left. Torch-free: these tests run
in an environment without torch (``make test-sweeper-oldest``), with
``--confcutdir=tests/sweeper``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import optuna
import pytest
from omegaconf import OmegaConf

APPS = Path(__file__).parent / "apps"
TIMEOUT_S = 120
SCHEDULE_ENV = "OPTSWEEP_TEST_SCHEDULE"  # set by the ``schedule`` fixture for app_command


def app_command(*args: str, app: str = "task.py") -> List[str]:
    schedule = os.environ.get(SCHEDULE_ENV)
    return [sys.executable, str(APPS / app), *args,
            *([f"hydra.sweeper.schedule={schedule}"] if schedule else [])]


# batches is the fallback for launchers without a runner: the quick tier checks the default only
@pytest.fixture(params=["slots", pytest.param("batches", marks=pytest.mark.slow)])
def schedule(request, monkeypatch) -> str:
    """Run a test's sweeps with each ``hydra.sweeper.schedule``: every guarantee holds in both."""
    monkeypatch.setenv(SCHEDULE_ENV, request.param)
    return request.param


def app_env() -> Dict[str, str]:
    # the joblib launcher's workers must import the app's module from its own directory
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(APPS), *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_workers(cwd: Path, *args: str, n: int = 2) -> None:
    """Start ``n`` sweeps with the same command at once, as workers sharing one study; all must
    succeed."""
    workers = [subprocess.Popen(app_command(*args), cwd=cwd, env=app_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for _ in range(n)]
    for worker in workers:
        _, err = worker.communicate(timeout=TIMEOUT_S)
        assert worker.returncode == 0, err


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on loopback for this session (skips, or fails under CI=true)."""
    from tests.engines import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def run_app(tmp_path):
    """``run_app(*overrides)``: the finished process (stdout+stderr in .output), run in tmp_path."""

    def run(*args: str, app: str = "task.py") -> subprocess.CompletedProcess:
        result = subprocess.run(app_command(*args, app=app), cwd=tmp_path, env=app_env(),
                                capture_output=True, text=True, timeout=TIMEOUT_S)
        result.output = result.stdout + result.stderr
        return result

    return run


def trials(sweep_dir: Path, name: str = "optsweep",
           storage: str = "") -> List[optuna.trial.FrozenTrial]:
    storage = storage or f"sqlite:///{sweep_dir / 'optuna.db'}"
    if storage.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(storage[len("journal:"):]))
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def results(sweep_dir: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(sweep_dir / "optimization_results.yaml"))
