"""python -m optsweep.benchmark end to end on tiny workloads (1 epoch, a few dozen images)."""
from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from optsweep import contract
from optsweep.analysis.benchmark import load_benchmark, study_choices
from optsweep.analysis.load import load_runs
from optsweep.confirm import chosen_run
from optsweep.rundir import BenchmarkDir, RunDir
from tests import processes

ENV = {"MPLBACKEND": "Agg"}
TINY = ["trainer.epochs=1", "data.train_limit=60", "data.test_limit=30", "data.batch_size=16",
        "trainer.progress=false", "model.weights=null", "trainer.num_threads=1"]


def arguments(out: Path, *argv: str) -> list[str]:
    """``python -m optsweep.benchmark``'s arguments: ``argv`` on tiny workloads into ``out``."""
    return ["-m", "optsweep.benchmark", f"dir={out}", *argv, *TINY]


def run(out: Path, *argv: str) -> subprocess.CompletedProcess:
    return processes.python(*arguments(out, *argv), env=ENV)


def statuses(sweep_dir: Path) -> dict[str, str]:
    return {job.name: str(RunDir(job).status())
            for job in sweep_dir.iterdir() if job.is_dir() and job.name.isdigit()}


def seeds(sweep_dir: Path) -> list[int]:
    import yaml

    return sorted(yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["trainer"]["seed"]
                  for job in sweep_dir.iterdir() if job.is_dir() and job.name.isdigit())


def summaries(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob(contract.SUMMARY_FILE)}


def complete_trials(study: Path) -> int:
    storage = f"sqlite:///{study / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(storage)
    states = [t.state for t in optuna.load_study(study_name=name, storage=storage).trials]
    return states.count(optuna.trial.TrialState.COMPLETE)


def assert_finished(out: Path, workloads, optimizers, budget: int, n_seeds: int) -> None:
    folder = BenchmarkDir(out)
    for w in workloads:
        for o in optimizers:
            assert statuses(folder.study_dir(w, o)) == {str(i): "completed" for i in range(budget)}
            assert complete_trials(folder.study_dir(w, o)) == budget
            assert set(statuses(folder.confirm_dir(w, o)).values()) == {"completed"}
            assert seeds(folder.confirm_dir(w, o)) == list(range(1, n_seeds + 1))  # new seeds


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_tiny_benchmark_completes_and_a_rerun_trains_nothing(tmp_path, cifar_root):
    out = tmp_path / "bench"
    argv = ("workloads=[digits,cifar10_small]", "optimizers=[adam,sgd]", "budget=3", "seeds=2",
            "defaults_baseline=false", f"data.root={cifar_root}", "data.download=false")
    first = run(out, *argv)
    assert first.returncode == 0, first.stderr[-3000:]
    assert_finished(out, ["digits", "cifar10_small"], ["adam", "sgd"], 3, 2)
    report = out / "report"
    curves = rows(report / "budget_curves.csv")
    assert {(r["workload"], r["optimizer"]) for r in curves} == {
        (w, o) for w in ("digits", "cifar10_small") for o in ("adam", "sgd")}
    assert sorted({int(r["k"]) for r in curves}) == [1, 2, 3]
    assert len(rows(report / "performance_profile.csv")) == 4
    assert len(rows(report / "benchmark_results.csv")) == 4
    assert (report / "report.md").read_text().split("\n## ")[1].startswith("Benchmark")

    before = summaries(out)
    again = run(out, *argv)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "+ -m optsweep" not in again.stdout  # no study, confirmation or training launched
    assert summaries(out) == before

    analysed = processes.module("optsweep.analysis", str(out), "--out", str(tmp_path / "analysis"),
                                env=ENV)
    assert analysed.returncode == 0, analysed.stderr[-3000:]
    assert (tmp_path / "analysis" / "report.md").read_text().split("\n## ")[1].startswith(
        "Benchmark")


def wait_for(path: Path, process: subprocess.Popen, limit_s: float = 600) -> None:
    deadline = time.monotonic() + limit_s
    while not path.exists():
        assert process.poll() is None, "the benchmark ended before it could be killed"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.2)


@pytest.mark.slow
def test_killed_and_rerun_it_finishes_every_study_and_confirmation_training_none_twice(tmp_path):
    out = tmp_path / "bench"
    argv = ("workloads=[digits]", "optimizers=[adam,adagrad,rmsprop]", "budget=3", "seeds=2")
    process = processes.start(*arguments(out, *argv), env=ENV, start_new_session=True)
    try:  # killed while the second study trains: the first is confirmed, the rest not begun
        wait_for(BenchmarkDir(out).study_dir("digits", "adagrad") / "0" / contract.SUMMARY_FILE,
                 process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not BenchmarkDir(out).confirm_dir("digits", "rmsprop").exists()
    finished_before = {p: t for p, t in summaries(out).items()
                       if RunDir(p.parent).status() in contract.FINAL}

    rerun = run(out, *argv)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_finished(out, ["digits"], ["adam", "adagrad", "rmsprop"], 3, 2)
    assert set(statuses(BenchmarkDir(out).defaults_dir("digits")).values()) == {"completed"}
    after = summaries(out)
    assert {p: after[p] for p in finished_before} == finished_before  # none trained twice

    # the seed study's comparison (each at its defaults, lr 1e-3) beside the tuned one
    results = {r["optimizer"]: r for r in rows(out / "report" / "benchmark_results.csv")}
    assert sorted(results) == ["adagrad", "adam", "rmsprop"]
    assert all(r["mean"] and r["defaults_mean"] for r in results.values())
    report = (out / "report" / "report.md").read_text()
    benchmark_section = report.split("\n## ")[1]
    assert "tuned, confirmed: test_acc1" in benchmark_section
    assert "at defaults: test_acc1" in benchmark_section
    manifest = json.loads((out / "benchmark.json").read_text())
    assert manifest["workloads"]["digits"] == {"target": 0.9, "target_metric": "val_acc1"}


def simulated_benchmark(out: Path, *argv: str) -> Path:
    """``out`` after a benchmark of ``argv`` on the simulated workload, lr alone searched."""
    done = processes.module("optsweep.benchmark", "workloads=[simulated]", "space=lr_only", *argv,
                            f"dir={out}", env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def summaries_of(sweep_dir: Path) -> dict[str, dict]:
    return {job: json.loads((sweep_dir / job / contract.SUMMARY_FILE).read_text())
            for job in statuses(sweep_dir)}


@pytest.mark.slow
def test_a_study_whose_trials_crashed_to_the_end_is_done_and_a_rerun_launches_it_no_more(tmp_path):
    # simulate.crash_rate=1: every attempt crashes, so each trial runs again once in its directory
    # (hydra.sweeper.crash_retries=1) and then counts as failed: the sweeper's count is the budget,
    # and the plan must find the same, not relaunch the study on every rerun
    out = tmp_path / "bench"
    argv = ("workloads=[simulated]", "space=lr_only", "optimizers=[adam]", "budget=2", "seeds=2",
            "simulate.crash_rate=1", "defaults_baseline=false", f"dir={out}")
    first = processes.module("optsweep.benchmark", *argv, env=ENV)
    assert first.returncode == 1 and "sweep=tune" in first.stdout  # nothing finished to confirm
    study = BenchmarkDir(out).study_dir("simulated", "adam")
    assert statuses(study) == {"0": "failed", "2": "failed"}  # one directory per setting
    for job in ("0", "2"):  # the first attempt's record kept aside by the re-run
        assert "simulated crash" in json.loads(
            (study / job / contract.CRASHED_SUMMARY_FILE).read_text())["error"]
    storage = f"sqlite:///{study / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(storage)
    done = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.state for t in done] == [optuna.trial.TrialState.FAIL] * 4
    assert [t.system_attrs.get("failed_trial") for t in done] == [None, 0, None, 2]
    again = processes.module("optsweep.benchmark", *argv, env=ENV)
    assert "sweep=tune" not in again.stdout, again.stdout


@pytest.mark.slow
def test_confirmation_seeds_that_diverge_stay_in_n_at_chance_and_the_report_counts_them(tmp_path):
    # simulated Adam diverges just above lr 1.6e-3, the edge moving 0.3 decades with the seed: the
    # chosen lr (1.57e-3; the study without its defaults trial, whose lr 1e-3 would be chosen)
    # diverges on some new seeds; a loss objective, so that a diverged trial
    # would enter the budget curves at WORST_LOSS (1e9) if it were not capped at ln(10)
    out = simulated_benchmark(tmp_path / "bench", "optimizers=[adam,sgd]", "budget=6", "seeds=4",
                              "trainer.objective=val_loss", "simulate.diverge_sd=0.3",
                              "simulate.optimizers.adam.diverge_lr=0.0016",
                              "hydra.sweeper.enqueue_defaults=false")
    ends = list(summaries_of(BenchmarkDir(out).confirm_dir("simulated", "adam")).values())
    diverged = sum(e["status"] == "diverged" for e in ends)
    assert 0 < diverged < len(ends) == 4
    kept = [e["final"]["test_acc1"] for e in ends if e["status"] != "diverged"]
    (adam,) = [r for r in rows(out / "report" / "benchmark_results.csv")
               if r["optimizer"] == "adam"]
    assert (int(adam["n"]), int(adam["diverged"])) == (4, diverged)
    assert float(adam["mean"]) == pytest.approx((sum(kept) + diverged * 0.1) / 4)  # chance: 1/10
    assert re.search(rf"\| simulated \| adam \| [^|]*n=4\) \| {diverged} of 4 \|",
                     (out / "report" / "report.md").read_text())
    trials = [r for r in rows(out / "report" / "lr_sensitivity.csv") if r["optimizer"] == "adam"]
    values = [float(r["value"]) for r in trials]
    assert [v for r, v in zip(trials, values) if r["status"] == "diverged"] == [
        pytest.approx(math.log(10))]
    curves = [r for r in rows(out / "report" / "budget_curves.csv") if r["optimizer"] == "adam"]
    assert float(curves[0]["expected_best"]) == pytest.approx(sum(values) / len(values))
    assert max(float(r["expected_best"]) for r in curves) < math.log(10)


@pytest.mark.slow
def test_the_confirmed_setting_is_the_best_trial_optuna_scored_not_a_diverged_one(tmp_path):
    # simulated SGD diverges above lr 0.02 (a tenth of its best): trials 4 and 6 of this study
    # diverge after epochs far above every completed trial's last one
    out = simulated_benchmark(tmp_path / "bench", "optimizers=[sgd]", "budget=8", "seeds=2",
                              "defaults_baseline=false", "simulate.optimizers.sgd.diverge_lr=0.02",
                              "simulate.diverge_sd=0")
    study = BenchmarkDir(out).study_dir("simulated", "sgd")
    ends = summaries_of(study)
    scored = {job: e for job, e in ends.items() if e["status"] in contract.SCORED}
    diverged = [e["final"]["val_acc1"] for e in ends.values() if e["status"] == "diverged"]
    best = max(scored, key=lambda job: scored[job]["objective"])
    assert diverged and min(diverged) > scored[best]["final"]["val_acc1"]
    lr = re.search(r"optimizer\.lr=(\S+)", (study / best / ".hydra" / "overrides.yaml").read_text())
    confirm = BenchmarkDir(out).confirm_dir("simulated", "sgd")
    jobs = statuses(confirm)
    assert len(jobs) == 2  # seeds=2: the verdicts need 2 or more
    for job in jobs:
        confirmed = (confirm / job / ".hydra" / "overrides.yaml")
        assert f"optimizer.lr={lr.group(1)}\n" in confirmed.read_text()


def lr_of(run_dir: Path) -> float:
    """The lr a run was given on its command line (a trial's draw, a confirmation's choice)."""
    (lr,) = [o.split("=", 1)[1] for o in RunDir(run_dir).overrides()
             if o.startswith("optimizer.lr=")]
    return float(lr)


@pytest.mark.slow
def test_an_optimizer_better_on_test_than_the_validation_named_best_is_said_so(tmp_path):
    # simulated adam peaks at val_acc1 0.84 but tests 0.12 lower (test_gap); sgd, moved to lr 1e-3
    # (its default, so that each study's trial 0, its defaults, sits at its peak), is 0.79 on
    # both: adam's study finds the better val_acc1, sgd is better on test_acc1 by about 0.07,
    # nine times a run's spread over seeds (0.008: seed effects 0.005 and 0.005, binomial test
    # noise 0.004)
    peaks = {"adam": (0.84, -0.12, 1.0), "sgd": (0.79, 0.0, 0.8)}  # peak, test_gap, width
    out = simulated_benchmark(tmp_path / "bench", "optimizers=[adam,sgd]", "budget=2", "seeds=3",
                              "trainer.epochs=2", "defaults_baseline=false",
                              "simulate.optimizers.adam.peak=0.84",
                              "simulate.optimizers.adam.test_gap=-0.12",
                              "simulate.optimizers.sgd.lr=0.001")
    folder = BenchmarkDir(out)
    choices = study_choices(load_benchmark(out), "val_acc1").set_index("optimizer")
    results = {r["optimizer"]: r for r in rows(out / "report" / "benchmark_results.csv")}
    assert float(results["adam"]["study_value"]) > float(results["sgd"]["study_value"])
    assert (results["adam"]["outcome"], results["sgd"]["outcome"]) == (
        "best", "better beyond noise")
    truth, tested = {}, {}
    for optimizer, (peak, gap, width) in peaks.items():
        confirm = folder.confirm_dir("simulated", optimizer)
        ends = summaries_of(confirm)
        (lr,) = {lr_of(confirm / job) for job in ends}
        # by hand (conf/workload/simulated.yaml): chance 0.1 + (peak - chance) x
        # 2^-((log10(lr / 1e-3) / width)^2) (1e-3: both models' lr), plus the test gap
        truth[optimizer] = 0.1 + (peak - 0.1) * 2 ** -(math.log10(lr / 1e-3) / width) ** 2 + gap
        assert [e["truth"]["test_acc1"] for e in ends.values()] == [
            pytest.approx(truth[optimizer])] * 3
        assert float(results[optimizer]["truth"]) == pytest.approx(truth[optimizer])
        tested[optimizer] = sum(e["final"]["test_acc1"] for e in ends.values()) / 3
        assert float(results[optimizer]["mean"]) == pytest.approx(tested[optimizer])
        # the trial that named the study's value is the trial its confirmation reran
        study = folder.study_dir("simulated", optimizer)
        trial = choices.loc[optimizer, "trial"]
        assert chosen_run(load_runs([study]), "test_acc1", "val_acc1")[0]["job"] == str(trial)
        assert lr_of(study / str(trial)) == lr
    assert truth["sgd"] > truth["adam"]  # the verdict's direction is the truth's
    (test,) = rows(out / "report" / "benchmark_significance.csv")
    assert (test["best"], test["setting"], test["outcome"]) == ("adam", "sgd",
                                                              "better beyond noise")
    assert float(test["difference"]) == pytest.approx(tested["sgd"] - tested["adam"])
    assert tested["sgd"] - tested["adam"] > 0.05  # sgd - adam: positive, sgd higher on test
    answer = (out / "report" / "report.md").read_text()
    assert "On simulated, **adam** is best" in answer
    assert ("But sgd is better on test_acc1 beyond seed noise (Welch, Holm-corrected): the best "
            "on val_acc1 is not the best on test_acc1.") in answer
    assert "Truth (simulated, noise-free) on simulated: the confirmed settings' expected " \
           f"test_acc1 rank sgd {truth['sgd']:.4f}, adam {truth['adam']:.4f}" in answer
