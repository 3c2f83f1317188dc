"""The benchmark's one pool of slots (optsweep.benchmark.pool), on the simulated workload: the same
trials and numbers as a process per step, a study's cap of trials in flight, a confirmation that
enters the pool as soon as its study settles, the defaults filling the slots, a rerun that starts
nothing, a pool killed at random moments that a rerun finishes exactly; a grid's runs that other
processes train, and the cap's rule."""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from omegaconf import OmegaConf

from optsweep import contract
from optsweep.benchmark import __main__ as benchmark_main
from optsweep.benchmark import pool
from optsweep.rundir import BenchmarkDir, RunDir
from optsweep.sweep import launchers
from optsweep.sweep.grid import GridSource
from optsweep.sweep.runners import Sweep
from tests import processes

ENV = {"MPLBACKEND": "Agg"}
# random search seeded per trial number and no cores lent: a trial's setting and numbers do not
# depend on when, where or beside what it ran
SAME_EITHER_WAY = ("hydra/sweeper/sampler=random", "hydra.sweeper.lend_cores=false")
SLOTS = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=3", "hydra.sweeper.n_jobs=3")
SMALL = ("workloads=[simulated]", "optimizers=[adam,sgd]", "space=lr_only", "budget=4", "seeds=2",
         "trainer.epochs=3")


def benchmark(out: Path, *argv: str) -> str:
    done = processes.module("optsweep.benchmark", f"dir={out}", *argv, env=ENV)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def runs(out: Path) -> dict[str, tuple]:
    """{run directory under ``out``: (status, objective, seed, its optimizer's settings)}."""
    found = {}
    for path in out.rglob(contract.SUMMARY_FILE):
        run = RunDir(path.parent)
        summary, config = run.summary(), run.config()
        found[str(path.parent.relative_to(out))] = (
            summary["status"], summary["objective"], config["trainer"]["seed"],
            json.dumps(config["optimizer"], sort_keys=True))
    return found


def trials(study_dir: Path) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{study_dir / contract.OPTUNA_DB_FILE}"
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage).trials


def overlaps(spans: list[tuple[float, float]]) -> bool:
    spans = sorted(spans)
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))


@pytest.mark.slow
def test_the_pool_runs_the_same_runs_with_the_same_numbers_as_a_process_per_step_and_once(
        tmp_path):
    benchmark(tmp_path / "steps", *SMALL, *SAME_EITHER_WAY, *SLOTS, "pool=false")
    pooled_out = benchmark(tmp_path / "pool", *SMALL, *SAME_EITHER_WAY, *SLOTS)
    pooled, per_step = runs(tmp_path / "pool"), runs(tmp_path / "steps")
    # 2 studies x 4 trials, 2 confirmations x 2 seeds, 2 optimizers x 2 seeds at their defaults
    assert len(pooled) == 8 + 4 + 4 and pooled == per_step
    for optimizer in ("adam", "sgd"):  # the studies hold the same trials, told the same values
        a, b = (trials(BenchmarkDir(tmp_path / mode).study_dir("simulated", optimizer))
                for mode in ("pool", "steps"))
        assert [(t.params, t.values, t.state) for t in a] == \
            [(t.params, t.values, t.state) for t in b]
    # one process and its 3 workers for every step: 2 studies, 2 confirmations, the defaults
    assert BenchmarkDir(tmp_path / "pool").read_slot_time()["worker_starts"] == 3
    assert BenchmarkDir(tmp_path / "steps").read_slot_time() is None
    assert sum(line.startswith("+ ") for line in pooled_out.splitlines()) == 5
    assert all(RunDir(tmp_path / "pool" / run).summary()[contract.SLOT_FIELD] in (0, 1, 2)
               for run in pooled)  # every step's jobs ran in the pool's 3 slots

    # a rerun of the finished benchmark opens no step and starts no worker
    out = tmp_path / "pool"
    before = {p: p.stat().st_mtime_ns for p in out.rglob(contract.SUMMARY_FILE)}
    slot_time = BenchmarkDir(out).slot_time_file.stat().st_mtime_ns
    again = benchmark(out, *SMALL, *SAME_EITHER_WAY, *SLOTS)
    assert "+ " not in again
    assert {p: p.stat().st_mtime_ns for p in out.rglob(contract.SUMMARY_FILE)} == before
    assert BenchmarkDir(out).slot_time_file.stat().st_mtime_ns == slot_time  # no pool ran


@pytest.mark.slow
def test_a_study_keeps_to_its_cap_while_the_pool_runs_the_other_work_beside_it(tmp_path):
    # soap's trials take 4x longer than lion's: at one trial in flight per study, lion's study
    # ends first and its confirmation starts while soap's study still runs; the third slot
    # runs the defaults meanwhile
    out = tmp_path / "bench"
    benchmark(out, "workloads=[simulated]", "optimizers=[lion,soap]", "space=lr_only", "budget=4",
              "seeds=2", "in_flight=1", "simulate.epoch_seconds=0.05",
              "simulate.optimizers.soap.step_cost=4", *SLOTS)
    folder = BenchmarkDir(out)
    spans = {o: [(t.datetime_start.timestamp(), t.datetime_complete.timestamp())
                 for t in trials(folder.study_dir("simulated", o))] for o in ("lion", "soap")}
    assert not overlaps(spans["lion"]) and not overlaps(spans["soap"])  # the cap: 1 in flight
    assert overlaps(spans["lion"] + spans["soap"])  # the two studies ran side by side

    def ended(sweep: Path) -> list[float]:
        return sorted(p.stat().st_mtime for p in sweep.glob(f"*/{contract.SUMMARY_FILE}"))

    soap_study_end = max(end for _, end in spans["soap"])
    assert ended(folder.confirm_dir("simulated", "lion"))[0] < soap_study_end
    assert ended(folder.defaults_dir("simulated"))[0] < soap_study_end


@pytest.mark.slow
def test_killed_at_two_random_moments_and_rerun_it_ends_as_an_uninterrupted_run(tmp_path):
    argv = (*SMALL, *SAME_EITHER_WAY, *SLOTS, "simulate.epoch_seconds=0.3")
    whole = tmp_path / "whole"
    benchmark(whole, *argv)
    out = tmp_path / "killed"
    moments = random.Random(os.getpid())
    final_before: dict[Path, int] = {}
    for _ in range(2):
        process = processes.start("-m", "optsweep.benchmark", f"dir={out}", *argv, env=ENV,
                                  start_new_session=True)
        time.sleep(moments.uniform(3.0, 8.0))  # start-up takes ~3 s: killed while it trains
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        final_before.update({p: p.stat().st_mtime_ns for p in out.rglob(contract.SUMMARY_FILE)
                             if RunDir(p.parent).status() in contract.FINAL})
    benchmark(out, *argv)
    assert runs(out) == runs(whole)  # every study at its budget, every confirmation at its seeds
    for optimizer in ("adam", "sgd"):
        states = [t.state for t in trials(BenchmarkDir(out).study_dir("simulated", optimizer))]
        assert states.count(optuna.trial.TrialState.COMPLETE) == 4  # none asked twice
    assert {p: p.stat().st_mtime_ns for p in final_before} == final_before  # none run twice


def test_under_the_basic_launcher_one_worker_runs_every_step_one_run_at_a_time(tmp_path):
    # the basic launcher's pool is one worker process: every study, confirmation and the
    # defaults, one run at a time, and the slot time of the whole benchmark beside its report
    out = tmp_path / "bench"
    assert benchmark_main.main([f"dir={out}", *SMALL, "budget=2", "trainer.epochs=2",
                                "trainer.progress=false"]) == 0
    found = runs(out)
    assert len(found) == 2 * 2 + 2 * 2 + 2 * 2
    assert {status for status, *_ in found.values()} == {"completed"}
    slot_time = BenchmarkDir(out).read_slot_time()
    assert slot_time["slots"] == 1 and slot_time["worker_starts"] == 1
    assert slot_time["busy_slot_s"] <= slot_time["wall_s"] + 1e-6  # one slot: never two at once
    assert (BenchmarkDir(out).report_dir / "report.html").is_file()


def grid(tmp_path: Path, jobs: int) -> GridSource:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    return GridSource(Sweep(str(tmp_path), None, config, None), [[f"trainer.seed={s}"]
                                                                  for s in range(jobs)])


def lease_of(pid: int) -> dict:
    return {"owner": f"{socket.gethostname()}:{pid}", "host": socket.gethostname(), "pid": pid,
            "renewed": time.time(), "stale_s": 120.0}


def test_a_grid_leaves_a_run_that_another_live_process_trains_to_it(tmp_path):
    for job in ("0", "1"):
        (tmp_path / job).mkdir()
    RunDir(tmp_path / "1").write_summary({"status": "completed", "objective": 0.5})
    source = grid(tmp_path, 3)
    assert sorted(source.pending) == [0, 2]  # job 1 is final: a rerun finishes a grid
    contract.atomic_write(tmp_path / "0" / contract.LEASE_FILE,
                          lambda f: json.dump(lease_of(os.getppid()), f))  # a live trainer
    jobs = source.claim(2)
    assert [job.number for job in jobs] == [2] and jobs[0].overrides == ("trainer.seed=2",)
    assert not source.wants_slots and not source.exhausted  # job 0 waits for its trainer
    source.finish(SimpleNamespace(job=jobs[0], error=None), 0, 1)
    RunDir(tmp_path / "0").write_summary({"status": "completed", "objective": 0.7})
    assert source.claim(1) == [] and source.exhausted  # the other process finished it


def test_a_grid_takes_over_a_run_whose_trainer_died(tmp_path):
    (tmp_path / "0").mkdir()
    dead = processes.start("-c", "pass")
    dead.wait()  # a pid of this host that no process has any more
    contract.atomic_write(tmp_path / "0" / contract.LEASE_FILE,
                          lambda f: json.dump(lease_of(dead.pid), f))
    source = grid(tmp_path, 1)
    assert [job.number for job in source.claim(1)] == [0]


@pytest.mark.parametrize("slots, asking, in_flight, cap", [
    (4, 4, 0, 1),  # every study asks: one trial each in flight
    (4, 3, 0, 2),  # ceil(4 / 3)
    (4, 1, 0, 4),  # the last study asking gets every slot
    (1, 4, 0, 1),  # never below one
    (4, 4, 3, 3),  # set by hand
])
def test_a_studys_cap_shares_the_slots_among_the_studies_still_asking(slots, asking, in_flight,
                                                                      cap):
    cfg = OmegaConf.create({"in_flight": in_flight})
    schedule = pool.Pool(cfg, [], None, slots)
    studies = [SimpleNamespace(closed=False, source=SimpleNamespace(wants_slots=True))
               for _ in range(asking)]
    done = SimpleNamespace(closed=False, source=SimpleNamespace(wants_slots=False))
    schedule.cells = [pool.CellSteps(None, study=study) for study in [*studies, done]]
    assert schedule.cap() == cap


@pytest.mark.parametrize("launcher_jobs, sweeper_jobs, said", [
    (4, 1, True),  # the per-step commands' grids ran 4 at once: the pool runs 1
    (2, 2, False), (-1, 3, False),  # joblib's default: every core
])
def test_a_joblib_n_jobs_other_than_the_pools_slots_is_said(launcher_jobs, sweeper_jobs, said):
    config = OmegaConf.create({"hydra": {
        "launcher": {"_target_": launchers.JOBLIB, "n_jobs": launcher_jobs},
        "sweeper": {"n_jobs": sweeper_jobs}}})
    message = pool.unused_launcher_jobs(config)
    assert bool(message) == said
    if said:
        assert f"hydra.sweeper.n_jobs={launcher_jobs}" in message
