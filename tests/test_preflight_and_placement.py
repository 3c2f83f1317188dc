"""A cause shared by every job is said once, before launching; parallel jobs spread over GPUs."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from optsweep import contract
from optsweep.rundir import RunDir
from optsweep.sweep import job, preflight, trial
from tests import processes
from tests.conftest import make_cfg


def with_hydra_task(config, *task: str):
    """``config`` as the sweep callback sees it: with the command line's overrides."""
    plain = OmegaConf.to_container(config)
    return OmegaConf.create({**plain, "hydra": {"overrides": {"task": list(task)}}})


def test_swept_keys_come_from_sweep_overrides_and_sweeper_params():
    config = OmegaConf.create({"hydra": {
        "overrides": {"task": ["model.weights=null,IMAGENET1K_V1", "data=digits", "+x=1"]},
        "sweeper": {"params": {"optimizer.lr": "tag(log, interval(1e-5, 1e-1))"}}}})
    assert preflight.swept_keys(config) == {"model.weights", "optimizer.lr"}


def test_missing_weights_are_found_once_unless_the_sweep_varies_them(tmp_path, monkeypatch,
                                                                    no_network):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "empty-hub"))
    config = make_cfg(["data=digits"])

    def with_task(*task):
        return with_hydra_task(config, *task)

    problem = preflight.shared_problem(with_task("optimizer.weight_decay=0,1e-4"))
    assert problem and problem.startswith("model.weights=IMAGENET1K_V1 is not cached")
    assert preflight.shared_problem(with_task("model.weights=null,IMAGENET1K_V1")) is None


def test_a_missing_dataset_is_found_before_launching(tmp_path):
    config = make_cfg(["model.weights=null", f"data.root={tmp_path}", "data.download=false"])
    config = with_hydra_task(config, "optimizer.lr=1e-3,1e-2")
    problem = preflight.shared_problem(config)
    assert problem and str(tmp_path) in problem and "cifar-100-python" in problem


@pytest.mark.slow
def test_the_design_cards_first_command_offline_says_the_cause_once(tmp_path):
    result = processes.optsweep("-m", "optimizer=adam", "optimizer.weight_decay=0,1e-4,1e-3",
                                "data=digits", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path,
                                env={"TORCH_HOME": str(tmp_path / "torch-home")})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("optsweep: error:")]
    assert len(errors) == 1 and "model.weights=IMAGENET1K_V1" in errors[0]
    assert "nothing was launched" in errors[0] and "Traceback" not in result.stderr
    assert not list((tmp_path / "s").glob("*/.hydra"))  # no job started


@pytest.mark.parametrize("parallel, gpus, expected", [
    (4, 4, [0, 1, 2, 3, 0, 1, 2, 3]),  # one job per GPU
    (8, 4, [0, 1, 2, 3, 0, 1, 2, 3]),  # n_jobs = 2 x GPUs: two jobs on each GPU at a time
    (4, 1, [None] * 8),  # one GPU: nothing to choose
    (1, 4, [None] * 8),  # one job at a time: the current GPU
])
def test_job_i_goes_to_gpu_i_mod_g(parallel, gpus, expected):
    assert [job.gpu_for_job(i, parallel, gpus) for i in range(8)] == expected


def test_a_joblib_job_is_placed_on_its_gpu_with_a_fake_device_count(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(job, "available_cores", lambda: 16)
    for num in range(6):
        hydra_cfg = OmegaConf.create({"job": {"num": num}, "launcher": {
            "_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
            "n_jobs": 4}})
        job.place_on_gpu(make_cfg(), hydra_cfg)
    job.place_on_gpu(make_cfg(["trainer.device=cuda:3"]), hydra_cfg)  # explicit: left alone
    assert chosen == [0, 1, 2, 3, 0, 1]


@pytest.mark.parametrize("hydra_launcher", [
    {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},  # a grid's job
    {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
     "n_jobs": 1}])  # a study's job with a launcher of 1: the pool's slots decide, not these
def test_in_a_pools_worker_every_sweeps_job_goes_to_its_slots_gpu_k_slots_per_gpu(
        monkeypatch, hydra_launcher):
    # the benchmark's one pool: n_jobs = G x k slots (here 2 GPUs x 2), every study's trial and
    # every grid's job placed by the slot of the worker running it, so that with one job per slot
    # at a time each GPU has k jobs at most, across all the benchmark's sweeps
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv(trial.SLOTS_ENV, "4")
    for slot, num in ((0, 7), (1, 0), (2, 3), (3, 12)):  # job numbers of different sweeps
        monkeypatch.setenv(trial.SLOT_ENV, str(slot))
        hydra_cfg = OmegaConf.create({"job": {"num": num}, "launcher": hydra_launcher})
        assert job.parallel_jobs(hydra_cfg, cores=16) == 4
        job.place_on_gpu(make_cfg(), hydra_cfg)
    assert chosen == [0, 1, 0, 1]  # slot mod 2: two slots, so two jobs at most, on each GPU


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    trial.forget_cores()


@pytest.mark.parametrize("explicit", [None, 1])
def test_a_parallel_job_takes_the_cores_its_sweep_lends_unless_its_threads_are_chosen(
        monkeypatch, torch_threads, explicit):
    monkeypatch.setattr(job, "available_cores", lambda: 4)
    hydra_cfg = OmegaConf.create({"job": {"num": 0}, "launcher": {
        "_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
        "n_jobs": 2}})
    cfg = make_cfg([f"trainer.num_threads={explicit}"] if explicit else [])
    if explicit:
        torch.set_num_threads(explicit)  # what training does with trainer.num_threads
    trial.forget_cores()  # as a pool's worker does before each job
    job.limit_threads(cfg, hydra_cfg)
    assert torch.get_num_threads() == (explicit or 2)  # 4 cores / 2 jobs
    trial.lend_cores(3)  # the sweep's final drain: what the worker's signal handler runs
    assert torch.get_num_threads() == (explicit or 3)


@pytest.mark.parametrize("lent", [None, 3])
def test_a_job_lent_cores_says_in_its_summary_which_thread_counts_it_ran_with(
        monkeypatch, torch_threads, tmp_path, lent):
    monkeypatch.setattr(job, "available_cores", lambda: 4)
    hydra_cfg = OmegaConf.create({"job": {"num": 0}, "launcher": {
        "_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
        "n_jobs": 2}})
    trial.forget_cores()
    job.limit_threads(make_cfg(), hydra_cfg)  # its share: 4 cores / 2 jobs
    if lent:
        trial.lend_cores(lent)  # the final drain
    record = RunDir(tmp_path)
    record.write_summary({"status": "completed", "objective": 0.5})
    job.record_pool_facts(record)
    summary = record.summary()
    assert summary.get(contract.LENT_THREADS_FIELD) == ([2, lent] if lent else None)
    assert summary["objective"] == 0.5


def test_a_sweeps_launching_process_checks_everything_without_torch(cifar_root):
    """Its workers train; it only composes, checks and asks Optuna: a torch import (seconds) would
    delay every sweep's first trial. Checked: the entry point, the sweeper, and the preflight on
    each dataset (CIFAR-100 on fabricated files) and on an optimizer of the optimizers extra."""
    probe = ("import json, sys\n"
             "from hydra import compose, initialize_config_dir\n"
             "from omegaconf import OmegaConf\n"
             "import optsweep.__main__, optsweep.sweep._optuna_impl\n"
             "from optsweep.conf_tree import conf_dir\n"
             "from optsweep.sweep import preflight\n"
             "problems = []\n"
             "for data in ['data=digits', 'data=cifar100', 'data=imagefolder']:\n"
             "    with initialize_config_dir(version_base='1.3', config_dir=conf_dir()):\n"
             "        cfg = compose('config', overrides=['sweep=lr_search', 'model.weights=null',\n"
             f"                      data, 'data.root={cifar_root}', 'data.download=false'])\n"
             "    plain = OmegaConf.to_container(cfg)\n"
             "    plain['hydra'] = {'overrides': {'task': ['optimizer=adam,prodigy']}}\n"
             "    problems.append(preflight.shared_problem(OmegaConf.create(plain)))\n"
             "torch = sorted(m for m in sys.modules if m.startswith('torch'))\n"
             "print(json.dumps([problems, torch]))")
    problems, imported = json.loads(processes.code(probe, check=True).stdout)
    assert imported == []
    digits, cifar100, imagefolder = problems
    assert digits is None and cifar100 is None  # found, without reading them
    assert imagefolder.startswith(f"data.root={cifar_root} has no 'train/' folder")
