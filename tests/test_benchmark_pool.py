"""The benchmark's one pool of slots (optsweep.benchmark.pool), on the simulated workload: the same
trials and numbers as a process per step, a study's cap of trials in flight, a confirmation that
enters the pool as soon as its study settles, the defaults filling the slots, a rerun that starts
nothing, and a pool killed at random moments that a rerun finishes exactly."""
from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import optuna
import pytest

from optsweep import contract
from optsweep.rundir import BenchmarkDir, RunDir
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
def test_the_pool_runs_the_same_runs_with_the_same_numbers_as_a_process_per_step(tmp_path):
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
def test_a_rerun_of_a_finished_benchmark_starts_no_worker_and_trains_nothing(tmp_path):
    out = tmp_path / "bench"
    benchmark(out, *SMALL, *SLOTS)
    before = {p: p.stat().st_mtime_ns for p in out.rglob(contract.SUMMARY_FILE)}
    slot_time = BenchmarkDir(out).slot_time_file.stat().st_mtime_ns
    again = benchmark(out, *SMALL, *SLOTS)
    assert "+ " not in again  # no step opened
    assert {p: p.stat().st_mtime_ns for p in out.rglob(contract.SUMMARY_FILE)} == before
    assert BenchmarkDir(out).slot_time_file.stat().st_mtime_ns == slot_time  # no pool ran


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
