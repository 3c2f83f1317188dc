"""Trackers fed from real runs and read back with each tracker's own reader: TensorBoard's event
accumulator, MLflow's client on a local SQLite store, W&B's offline run files.

A test whose tracker package is missing skips with a one-line reason, and fails instead where
CI=true: CI installs every extra (pip install -e '.[test,tensorboard,mlflow,wandb]').
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from optsweep import contract
from optsweep.contract import METRIC_COLUMNS, Status
from optsweep.rundir import RunDir
from optsweep.train import train
from tests import processes
from tests.conftest import QUICK, make_cfg

ROOT = Path(__file__).resolve().parents[1]
TWO_EPOCHS = [*QUICK, "trainer.epochs=2"]


def needs(package: str) -> None:
    """Skip when ``package`` is missing, except on CI, where every tracker must be tested."""
    if importlib.util.find_spec(package) is None:
        message = f"{package} is not installed (pip install -e '.[{package}]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)


def read_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / contract.METRICS_FILE, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def interrupt_after_first_epoch(epoch: int, row: dict) -> None:
    if epoch == 1:
        raise KeyboardInterrupt  # as Ctrl-C or a scheduler's SIGTERM would


def train_interrupted_then_resumed(cfg, run_dir: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir, on_epoch=interrupt_after_first_epoch, choices={"optimizer": "adam"})
    assert RunDir(run_dir).summary()["status"] == Status.INTERRUPTED
    train(cfg, run_dir, choices={"optimizer": "adam"})
    assert RunDir(run_dir).summary()["status"] == Status.COMPLETED


# --- the logger group -----------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, loggers", [
    ([], []),
    (["logger=[tensorboard,mlflow]"], ["tensorboard", "mlflow"]),
    (["logger=wandb"], ["wandb"]),
    (["logger=[wandb]", "logger.wandb.mode=offline"], ["wandb"]),
])
def test_logger_group_composes_none_one_or_a_list(overrides, loggers):
    from optsweep.tracking import selected

    cfg = make_cfg(overrides)
    assert selected(cfg) == loggers
    assert "logger" not in cfg or set(cfg.logger) == set(loggers)


def test_a_logger_list_is_one_value_inside_a_multirun_sweep():
    overrides = OverridesParser.create().parse_overrides(
        ["optimizer=adam,rmsprop", "logger=[tensorboard,mlflow]"])
    (batch,) = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    assert len(batch) == 2
    for job in batch:
        assert list(make_cfg(job).logger) == ["tensorboard", "mlflow"]


@pytest.mark.slow
def test_a_missing_tracker_is_one_line_and_exit_2_before_training(tmp_path):
    probe = ("import sys; sys.modules['mlflow'] = None; from optsweep.__main__ import cli; "
             f"sys.argv = ['optsweep', *{[*QUICK, 'logger=[tensorboard,mlflow]']!r}]; cli()")
    result = processes.code(probe, cwd=tmp_path)
    assert result.returncode == 2
    assert ("optsweep: error: logger=mlflow needs the mlflow package: "
            "pip install -e '.[mlflow]'") in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("multirun/runs/*/metrics.csv"))


# --- TensorBoard ----------------------------------------------------------------------------------


def read_events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return events


def hparams_of(events) -> dict:
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    content = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    session = HParamsPluginData.FromString(content).session_start_info
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
            for k, v in session.hparams.items()}


def measured(rows: list[dict]) -> list[str]:
    """The columns these rows measured (step_size_estimate only for Prodigy-like optimizers)."""
    return [c for c in METRIC_COLUMNS[1:] if any(c in r for r in rows)]


def assert_every_metric_every_epoch_once(events, rows: list[dict]) -> None:
    for column in measured(rows):
        logged = [(e.step, e.value) for e in events.Scalars(column)]
        expected = [(int(r["epoch"]), r[column]) for r in rows]
        assert [s for s, _ in logged] == [s for s, _ in expected], column
        assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-6), column


@pytest.mark.slow
def test_tensorboard_gets_every_metric_every_epoch_and_the_config(tmp_path):
    needs("tensorboard")
    run_dir = tmp_path / "sweep" / "0"
    train(make_cfg([*TWO_EPOCHS, "logger=tensorboard", "optimizer.lr=0.002"]), run_dir,
          choices={"optimizer": "adam", "data": "digits", "model": "resnet18"})
    events = read_events(run_dir)
    assert_every_metric_every_epoch_once(events, read_rows(run_dir))
    hparams = hparams_of(events)
    assert hparams["optimizer.lr"] == 0.002 and hparams["trainer.seed"] == 0
    assert hparams["data.name"] == "digits" and hparams["tag.optimizer"] == "adam"
    assert hparams["tag.sweep"] == "sweep" and hparams["tag.dataset"] == "digits"
    summary = RunDir(run_dir).summary()
    objective = events.Scalars("summary/objective")[-1].value
    assert objective == pytest.approx(summary["objective"])
    assert events.Scalars("summary/best_epoch")[-1].value == summary["best"]["epoch"]
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1  # one TensorBoard run per job


def test_tensorboard_after_a_resume_holds_each_epoch_once(tmp_path):
    needs("tensorboard")
    train_interrupted_then_resumed(make_cfg([*TWO_EPOCHS, "logger=tensorboard"]), tmp_path)
    assert_every_metric_every_epoch_once(read_events(tmp_path), read_rows(tmp_path))


# --- MLflow ---------------------------------------------------------------------------------------


def mlflow_runs(store: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(store)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} in {store}"
    return client.search_runs([found.experiment_id])


def assert_mlflow_run_matches(store: str, run, run_dir: Path) -> None:
    from mlflow import MlflowClient

    client, rows = MlflowClient(store), read_rows(run_dir)
    for column in measured(rows):
        recorded = client.get_metric_history(run.info.run_id, column)
        history = sorted((m.step, m.value) for m in recorded)
        assert history == [(int(r["epoch"]), pytest.approx(r[column])) for r in rows], column
    summary = RunDir(run_dir).summary()
    assert run.data.metrics["objective"] == pytest.approx(summary["objective"])
    assert run.data.metrics["best_epoch"] == summary["best"]["epoch"]
    assert run.data.tags["status"] == summary["status"] and run.info.status == "FINISHED"
    assert run.data.tags["run_dir"] == str(run_dir.resolve())
    assert run.data.tags["config_fingerprint"] == summary["config_fingerprint"]


@pytest.mark.slow
def test_mlflow_gets_metrics_by_epoch_params_and_tags_in_one_run(tmp_path):
    needs("mlflow")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "lr_sweep" / "3"
    train(make_cfg([*TWO_EPOCHS, "logger=mlflow", f"logger.mlflow.tracking_uri={store}"]),
          run_dir, choices={"optimizer": "adam", "data": "digits", "model": "resnet18"})
    (run,) = mlflow_runs(store, "lr_sweep")
    assert_mlflow_run_matches(store, run, run_dir)
    assert run.info.run_name == "lr_sweep/3"
    assert run.data.params["optimizer.lr"] == "0.001" and run.data.params["data.name"] == "digits"
    assert {k: run.data.tags[k] for k in ("sweep", "optimizer", "dataset", "model", "seed")} == \
        {"sweep": "lr_sweep", "optimizer": "adam", "dataset": "digits", "model": "resnet18",
         "seed": "0"}


def test_mlflow_continues_the_same_run_after_a_resume(tmp_path):
    needs("mlflow")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "sweep" / "0"
    cfg = make_cfg([*TWO_EPOCHS, "logger=mlflow", f"logger.mlflow.tracking_uri={store}"])
    train_interrupted_then_resumed(cfg, run_dir)
    (run,) = mlflow_runs(store, "sweep")
    assert_mlflow_run_matches(store, run, run_dir)
    assert (run_dir / contract.TRACKING_FILE).is_file()


@pytest.mark.slow
def test_two_parallel_joblib_jobs_write_one_mlflow_store(tmp_path):
    needs("mlflow")
    result = processes.optsweep("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                "optimizer=adam,rmsprop", *QUICK, "logger=mlflow",
                                "hydra.sweep.dir=multirun/pair", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    store = f"sqlite:///{tmp_path / 'multirun' / 'mlflow.db'}"  # the default store
    runs = mlflow_runs(store, "pair")
    assert sorted(r.info.run_name for r in runs) == ["pair/0", "pair/1"]
    assert sorted(r.data.tags["optimizer"] for r in runs) == ["adam", "rmsprop"]
    for run in runs:
        assert_mlflow_run_matches(store, run, Path(run.data.tags["run_dir"]))
        assert "epoch 1/1" in (Path(run.data.tags["run_dir"]) / "optsweep.log").read_text()


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.mark.slow
def test_an_unreachable_mlflow_server_costs_seconds_and_the_run_completes(tmp_path, caplog):
    needs("mlflow")
    import time

    t0 = time.perf_counter()
    train(make_cfg(QUICK), tmp_path / "plain")
    plain_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    train(make_cfg([*QUICK, "logger=mlflow",
                    f"logger.mlflow.tracking_uri=http://127.0.0.1:{closed_port()}"]),
          tmp_path / "tracked")
    tracked_s = time.perf_counter() - t0
    assert RunDir(tmp_path / "tracked").summary()["status"] == Status.COMPLETED
    warnings = [r.message for r in caplog.records if "logger=mlflow failed" in r.message]
    assert len(warnings) == 1  # warned once, then off
    assert tracked_s - plain_s < 10, (f"{tracked_s:.1f} s with the server down, "
                                      f"{plain_s:.1f} s without")


# --- export ---------------------------------------------------------------------------------------


def export(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return processes.module("optsweep.export", *args, cwd=cwd)


@pytest.mark.slow
def test_export_of_a_finished_sweep_twice_adds_each_run_once(tmp_path):
    needs("mlflow")
    needs("tensorboard")
    result = processes.optsweep("-m", "optimizer=adam,rmsprop", *QUICK,
                                "hydra.sweep.dir=finished", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    store, sweep = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "finished"
    for _ in range(2):
        result = export("mlflow", str(sweep), f"logger.mlflow.tracking_uri={store}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        result = export("tensorboard", str(sweep), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert "0 exported, 2 already there" in result.stdout
    runs = mlflow_runs(store, "finished")
    assert sorted(r.info.run_name for r in runs) == ["finished/0", "finished/1"]
    assert sorted(r.data.tags["optimizer"] for r in runs) == ["adam", "rmsprop"]
    for run in runs:
        assert_mlflow_run_matches(store, run, Path(run.data.tags["run_dir"]))
    for job in ("0", "1"):
        assert len(list((sweep / job).glob("events.out.tfevents.*"))) == 1
        events = read_events(sweep / job)
        assert_every_metric_every_epoch_once(events, read_rows(sweep / job))
        assert hparams_of(events)["tag.sweep"] == "finished"


def test_export_of_a_path_without_runs_is_one_error(tmp_path, capsys):
    from optsweep.export import main

    assert main(["tensorboard", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("optsweep: error:") and str(tmp_path) in line


# --- Weights & Biases -----------------------------------------------------------------------------


def test_wandb_without_an_api_key_writes_an_offline_run_with_the_config(tmp_path, monkeypatch):
    needs("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: no key from `wandb login` either
    run_dir = tmp_path / "sweep" / "0"
    t0 = time.perf_counter()
    train(make_cfg([*TWO_EPOCHS, "logger=wandb", "optimizer.lr=0.002"]), run_dir,
          choices={"optimizer": "adam", "data": "digits", "model": "resnet18"})
    assert RunDir(run_dir).summary()["status"] == Status.COMPLETED
    run_id = json.loads((run_dir / contract.TRACKING_FILE).read_text())["wandb"]["id"]
    (offline,) = (run_dir / "wandb").glob(f"offline-run-*-{run_id}")
    assert (offline / f"run-{run_id}.wandb").stat().st_size > 0
    # no public reader of offline runs: protobuf records, each config value as JSON text
    records = (offline / f"run-{run_id}.wandb").read_bytes()
    assert b"optimizer.lr" in records and b"0.002" in records and b"trainer.seed" in records
    assert b"val_acc1" in records and b"sweep/0" in records  # a metric, the run's name
    assert time.perf_counter() - t0 < 120
