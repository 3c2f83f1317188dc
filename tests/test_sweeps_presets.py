"""The sweep presets, pruners and launchers compose and expand as documented; the sweep machinery's
parts (storage, locks, summaries, failures) behave, without training anything."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import socket
import threading
import time
from pathlib import Path

import optuna
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException
from hydra.utils import instantiate

from optsweep import contract, lease
from optsweep.conf_tree import conf_dir
from optsweep.optim.build import build_optimizer
from optsweep.resources import threads_per_job
from optsweep.rundir import SweepDir
from optsweep.sweep import callbacks, job, search_space, storage
from optsweep.sweep.errors import SweepError
from optsweep.train import check_config

WD = [0.0, 1e-4, 1e-3, 1e-2, 0.1, 1.0]
BETAS = [[0.9, 0.999], [0.7, 0.999], [0.5, 0.999], [0.9, 0.8], [0.9, 0.6], [0.9, 0.4]]
LRS = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
OPTIMIZERS = ["adam", "adagrad", "rmsprop"]
TARGETS = {"adam": "torch.optim.Adam", "adagrad": "torch.optim.Adagrad",
           "rmsprop": "torch.optim.RMSprop"}

# preset -> the swept keys' values of each job, in Hydra's job order
EXPECTED = {
    "optimizers": [{"optimizer._target_": TARGETS[o]} for o in OPTIMIZERS],
    "quickstart": [{"optimizer._target_": TARGETS[o], "data.name": "digits"} for o in OPTIMIZERS],
    "adam_weight_decay": [{"optimizer._target_": TARGETS["adam"], "optimizer.weight_decay": v}
                          for v in WD],
    "adam_betas": [{"optimizer._target_": TARGETS["adam"], "optimizer.betas": b} for b in BETAS],
    "adagrad_lr_decay": [{"optimizer._target_": TARGETS["adagrad"], "optimizer.lr_decay": v}
                         for v in [0.1, 0.01, 1e-3, 1e-4, 1e-5]],
    "adagrad_eps": [{"optimizer._target_": TARGETS["adagrad"], "optimizer.eps": v}
                    for v in [1e-10, 1e-8, 1e-6, 1e-4, 1e-2]],
    "rmsprop_momentum": [{"optimizer._target_": TARGETS["rmsprop"], "optimizer.momentum": v}
                         for v in [0.1, 0.3, 0.5, 0.7, 0.9]],
    "rmsprop_alpha": [{"optimizer._target_": TARGETS["rmsprop"], "optimizer.alpha": v}
                      for v in [0.5, 0.7, 0.9, 0.99, 0.999]],
    "rmsprop_centered": [{"optimizer._target_": TARGETS["rmsprop"], "optimizer.centered": v}
                         for v in [False, True]],
    "lr_grid": [{"optimizer._target_": TARGETS[o], "optimizer.lr": lr}
                for o in OPTIMIZERS for lr in LRS],
    "modern": [{"optimizer._target_": t} for t in (
        "torch.optim.AdamW", "optsweep.optim.muon.Muon", "pytorch_optimizer.Lion",
        "pytorch_optimizer.SOAP", "pytorch_optimizer.Shampoo", "pytorch_optimizer.ADOPT",
        "prodigyopt.Prodigy", "dadaptation.DAdaptAdam", "schedulefree.AdamWScheduleFree",
        "schedulefree.SGDScheduleFree", "schedulefree.RAdamScheduleFree")],
}


def compose_hydra(overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=conf_dir()):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def expand(preset: str, extra: tuple[str, ...] = ()) -> list[list[str]]:
    """The jobs Hydra's basic sweeper launches for `python -m optsweep sweep=PRESET EXTRA`."""
    cfg = compose_hydra([f"sweep={preset}"])  # compose() cannot take sweep overrides
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()] + list(extra)
    (batch,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)
    return batch


def select(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return list(node) if hasattr(node, "__len__") and not isinstance(node, str) else node


def test_every_preset_file_is_covered():
    presets = {p.stem for p in (Path(conf_dir()) / "sweep").glob("*.yaml")}
    assert presets == set(EXPECTED) | {"lr_search", "tune"}  # tune: tests/test_benchmark_config.py


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_preset_expands_to_its_jobs_and_each_job_builds(preset):
    jobs = expand(preset)
    assert len(jobs) == len(EXPECTED[preset])
    for overrides, expected in zip(jobs, EXPECTED[preset]):
        cfg = compose_hydra([f"sweep={preset}", *overrides])
        assert cfg.hydra.mode.name == "MULTIRUN"
        assert cfg.hydra.sweep.dir == f"multirun/{preset}"  # named: a rerun resumes it
        for key, value in expected.items():
            assert select(cfg, key) == value, (preset, overrides, key)
        check_config(cfg)
        build_optimizer(cfg.optimizer, [torch.nn.Parameter(torch.zeros(2))], torch.device("cpu"))


def test_seed_repeats_on_top_of_a_preset():
    jobs = expand("adam_betas", ("trainer.seed=0,1,2",))
    assert len(jobs) == len(BETAS) * 3
    assert {o for job_ in jobs for o in job_ if o.startswith("trainer.seed")} == \
        {"trainer.seed=0", "trainer.seed=1", "trainer.seed=2"}


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(MissingConfigException) as info:
        compose_hydra(["sweep=optimisers"])
    for name in ("optimizers", "lr_search", "adam_betas", "quickstart"):
        assert name in str(info.value)


def test_lr_search_is_a_seeded_log_uniform_tpe_search_stored_under_multirun():
    sweeper = compose_hydra(["sweep=lr_search", "optimizer=rmsprop"]).hydra.sweeper
    assert sweeper._target_.endswith("optsweep_optuna_sweeper.OptunaSweeper")
    assert sweeper.direction == "maximize" and sweeper.n_trials == 20
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 0
    assert sweeper.storage == "sqlite:///multirun/lr_search/rmsprop/optuna.db"
    space, fixed = search_space.parse(sweeper.params, None, [])
    assert not fixed
    assert space["optimizer.lr"] == optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)
    assert isinstance(instantiate(sweeper.pruner), optuna.pruners.MedianPruner)


@pytest.mark.parametrize("name, cls", [("median", "MedianPruner"), ("hyperband", "HyperbandPruner"),
                                       ("successive_halving", "SuccessiveHalvingPruner"),
                                       ("threshold", "ThresholdPruner"), ("nop", "NopPruner")])
def test_pruner_configs_instantiate(name, cls):
    # the threshold pruner needs a bound (Optuna's own rule): a run still at chance, say
    bound = ["hydra.sweeper.pruner.lower=0.2"] if name == "threshold" else []
    cfg = compose_hydra(["sweep=lr_search", f"hydra/sweeper/pruner={name}", *bound])
    assert type(instantiate(cfg.hydra.sweeper.pruner)).__name__ == cls


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    launcher = compose_hydra(["sweep=lr_grid", "hydra/launcher=slurm"]).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.max_num_timeout > 0 and launcher.gpus_per_node == 1


@pytest.mark.parametrize("cores, jobs, threads", [(16, 4, 4), (2, 2, 1), (2, 4, 1), (8, 3, 2)])
def test_parallel_jobs_share_the_cores(cores, jobs, threads):
    assert threads_per_job(cores, jobs) == threads
    assert threads_per_job(cores, jobs) * min(jobs, cores) <= cores


@pytest.mark.parametrize("launcher, n_jobs, expected", [
    ("basic", None, 1), ("joblib", 3, 3), ("joblib", -1, 8), ("joblib", -2, 7)])
def test_parallel_jobs_reads_the_launcher(launcher, n_jobs, expected):
    overrides = [f"hydra/launcher={launcher}"] + (
        [f"hydra.launcher.n_jobs={n_jobs}"] if n_jobs is not None else [])
    hydra_cfg = compose_hydra(overrides).hydra
    assert job.parallel_jobs(hydra_cfg, cores=8) == expected


def test_unopenable_storage_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for url in (f"sqlite:///{blocker}/sub/optuna.db", "postgresql://me:secret@127.0.0.1:1/none"):
        with pytest.raises(SweepError) as info:
            storage.open_study(url, "s", ["maximize"], optuna.samplers.RandomSampler(),
                               optuna.pruners.NopPruner())
        message = str(info.value)
        assert message.startswith("optsweep: error: hydra.sweeper.storage=")
        assert "secret" not in message


def test_sqlite_storage_creates_its_directory(tmp_path):
    url = storage.default_storage(tmp_path / "new" / "sweep")
    study, _ = storage.open_study(url, "s", ["maximize"], optuna.samplers.RandomSampler(),
                                  optuna.pruners.NopPruner())
    assert (tmp_path / "new" / "sweep" / "optuna.db").is_file()
    assert study.direction.name == "MAXIMIZE"


def test_study_lock_is_exclusive_across_holders(tmp_path):
    url = storage.default_storage(tmp_path)
    inside, overlaps = [], []

    def hold():
        with storage.study_lock(url, "s"):
            overlaps.append(len(inside))
            inside.append(1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [0, 0, 0, 0]


def test_dead_worker_is_recognised_only_on_this_host():
    process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    process.start()
    process.join()
    host = socket.gethostname()
    assert lease.is_dead_local_worker(f"{host}:{process.pid}")
    assert not lease.is_dead_local_worker(f"{host}:{os.getpid()}")
    assert not lease.is_dead_local_worker(f"another-{host}:{process.pid}")
    assert not lease.is_dead_local_worker(None)


def test_a_different_command_into_a_named_sweep_dir_is_refused(tmp_path, capsys):
    command = json.dumps({"overrides": ["sweep=optimizers"]})
    (tmp_path / contract.SWEEP_COMMAND_FILE).write_text(command)
    callbacks.check_same_command(tmp_path, ["sweep=optimizers"])  # the same command: resumes
    with pytest.raises(SystemExit) as info:
        callbacks.check_same_command(tmp_path, ["sweep=optimizers", "trainer.seed=0,1,2"])
    assert info.value.code == 2
    assert "hydra.sweep.dir=multirun/NAME" in capsys.readouterr().err


def test_summary_lists_every_job_in_order_with_its_status(tmp_path):
    for name, summary in (("10", {"status": "completed", "objective": 0.5}), ("2", None),
                          ("1", {"status": "failed", "objective": 0.0, "error": "optimizer.lr"})):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "config.yaml").write_text("{}")
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text(f"- trainer.seed={name}\n")
        if summary:
            (tmp_path / name / "summary.json").write_text(
                json.dumps({"objective_name": "val_acc1", **summary}))
    rows = callbacks.collect(tmp_path)
    assert [(r["job"], r["status"]) for r in rows] == [("1", "failed"), ("2", "unfinished"),
                                                        ("10", "completed")]
    SweepDir(tmp_path).write_sweep_summary(rows, callbacks.COLUMNS)
    assert json.loads((tmp_path / "sweep_summary.json").read_text()) == rows
    text = callbacks.format_summary(tmp_path, rows)
    assert "failed jobs:" in text and "optimizer.lr" in text and "trainer.seed=10" in text


def test_a_job_failure_is_recorded_with_a_finite_objective(tmp_path):
    from tests.conftest import QUICK, make_cfg

    outcome = job.record_failure(make_cfg(QUICK), tmp_path, RuntimeError("CUDA out of memory"),
                                 {"data": "digits"})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert math.isfinite(outcome.objective) and outcome.objective == summary["objective"]
    assert summary["status"] == outcome.status == "failed"
    assert "CUDA out of memory" in summary["error"] and summary["choices"] == {"data": "digits"}


def test_study_runs_every_grid_preset_in_order_then_the_analysis(monkeypatch, capsys):
    from optsweep import study

    available = {"optsweep.analysis": True}
    monkeypatch.setattr(study.importlib.util, "find_spec", lambda name: available.get(name))
    assert study.main(["--dry-run", "trainer.seed=0,1,2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == [f"+ -m optsweep -m sweep={name} trainer.seed=0,1,2"
                          for name in study.STUDY]
    assert lines[-1] == "+ -m optsweep.analysis multirun/"
    assert set(study.STUDY) == set(EXPECTED) - {"quickstart", "modern"}  # modern: beyond the study

    available.clear()  # no analysis module yet: the study is the sweeps alone
    assert [c[-1] for c in study.commands(("optimizers",), [])] == ["sweep=optimizers"]


@pytest.mark.parametrize("schedule, launcher_jobs, jobs", [
    ("slots", None, 2), ("slots", 4, 2), ("batches", None, 2), ("batches", 1, 1)])
def test_a_trials_threads_come_from_the_slots_it_has(schedule, launcher_jobs, jobs):
    # the joblib launcher's n_jobs defaults to -1 (every core): under slots the pool has the
    # sweeper's n_jobs workers, so on 16 cores each of 2 trials gets 16 / 2 threads
    overrides = ["sweep=tune", "hydra/launcher=joblib", "hydra.sweeper.n_jobs=2",
                 f"hydra.sweeper.schedule={schedule}"] + (
        [f"hydra.launcher.n_jobs={launcher_jobs}"] if launcher_jobs else [])
    hydra_cfg = compose_hydra(overrides).hydra
    assert job.parallel_jobs(hydra_cfg, cores=16) == jobs
    assert threads_per_job(16, job.parallel_jobs(hydra_cfg, cores=16)) == 16 // jobs
