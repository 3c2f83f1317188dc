"""Which optimizer the benchmark names best, and what the verdicts test it against: named on the
studies' own trials, tested on the confirmation runs (new seeds) the naming did not see."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import write_run

from optsweep.analysis.benchmark import (
    Benchmark,
    benchmark_from_rows,
    defaults_trials,
    load_benchmark,
    startup_draws,
    study_accounts,
    study_choices,
    study_sampler,
)
from optsweep.analysis.benchmark_report import (
    display_results,
    power_lines,
    results_table,
    sampler_line,
)
from optsweep.analysis.load import load_runs
from optsweep.analysis.stats import Verdict, detectable_difference, welch
from optsweep.confirm import chosen_run
from optsweep.rundir import BenchmarkDir


def run(role: str, optimizer: str, number: int, val: float, test: float,
        status: str = "completed", setting: str = "", workload: str = "digits") -> dict:
    sweep = f"{workload}/{optimizer}" + ("_confirm" if role == "confirmed" else "")
    return {"run": f"{sweep}/{number}", "sweep": sweep, "dataset": workload,
            "optimizer": optimizer, "status": status,
            "setting": setting or f"lr={number}", "job": str(number), "trainer.seed": number,
            "final_val_acc1": val, "final_test_acc1": test, "final_test_acc5": test,
            "best_epoch": 1.0, "wall_seconds": 1.0}


def confirmations(optimizer: str, vals, tests) -> list[dict]:
    return [run("confirmed", optimizer, seed + 1, v, t, setting="lr=0.1")
            for seed, (v, t) in enumerate(zip(vals, tests))]


@pytest.fixture
def review_case() -> Benchmark:
    # the review's numbers on the confirmation runs: A val (.90, .91, .90) test (.70, .71, .70),
    # B val (.85, .86, .85) test (.80, .81, .80); A's confirmation val mean is the higher, but
    # B's study found the better trial (0.84 against A's 0.83; A's 0.95 diverged)
    rows = [run("trial", "A", 0, 0.83, 0.0), run("trial", "A", 1, 0.95, 0.0, status="diverged"),
            run("trial", "A", 2, 0.60, 0.0), run("trial", "B", 0, 0.84, 0.0),
            run("trial", "B", 1, 0.20, 0.0)]
    rows += confirmations("A", (0.90, 0.91, 0.90), (0.70, 0.71, 0.70))
    rows += confirmations("B", (0.85, 0.86, 0.85), (0.80, 0.81, 0.80))
    return benchmark_from_rows(rows, ["A", "B"])


def test_the_best_is_the_optimizer_whose_study_found_the_best_scored_trial(review_case):
    choices = study_choices(review_case, "val_acc1")
    assert choices["study_value"].tolist() == [0.83, 0.84]  # the diverged 0.95 is not a choice
    assert choices["best"].tolist() == [False, True]


def test_the_verdict_is_tested_on_the_confirmation_runs_against_the_study_named_best(review_case):
    results, tests = results_table(review_case, "test_acc1", "val_acc1")
    by = results.set_index("optimizer")
    assert by.loc["B", "outcome"] == Verdict.BEST
    assert by.loc["A", "outcome"] == Verdict.WORSE  # named on confirmation val, A would be best
    p = welch([0.80, 0.81, 0.80], [0.70, 0.71, 0.70])
    assert tests["p_value"].iloc[0] == pytest.approx(p)
    assert tests["difference"].iloc[0] == pytest.approx(0.7033333 - 0.8033333)
    shown = display_results(results, "test_acc1").set_index("optimizer")
    assert shown.loc["B", "study's best (names the best)"] == "0.8400"


def test_ties_name_the_first_optimizer_in_the_benchmarks_order_and_no_trial_names_none():
    rows = [run("trial", "B", 0, 0.84, 0.0), run("trial", "A", 0, 0.84, 0.0)]
    for optimizer in ("A", "B"):
        rows += confirmations(optimizer, (0.9, 0.9), (0.7, 0.72))
    choices = study_choices(benchmark_from_rows(rows, ["B", "A"]), "val_acc1")
    assert choices.loc[choices["best"], "optimizer"].tolist() == ["B"]
    only_failed = [run("trial", "A", 0, 0.9, 0.0, status="failed")] + confirmations(
        "A", (0.9, 0.9), (0.7, 0.72))
    results, _ = results_table(benchmark_from_rows(only_failed, ["A"]), "test_acc1", "val_acc1")
    assert results["outcome"].tolist() == [Verdict.UNTESTED]


def test_the_trial_that_names_the_best_is_the_trial_the_confirmation_reruns_among_equals(
        tmp_path):
    # sgd's two trials tie on val_acc1 (0.85). Its config holds momentum before weight_decay,
    # rmsprop's (loaded first) weight_decay before momentum: ranked by momentum first, trial 1
    # (momentum 0) comes first and is the one chosen; ranked by weight_decay first, trial 0
    # (weight_decay 0) would be. The confirmation reads the study alone.
    folder = BenchmarkDir(tmp_path / "bench")
    folder.path.mkdir()
    folder.manifest_file.write_text(json.dumps({
        "settings": {"optimizers": ["rmsprop", "sgd"], "budget": 2},
        "workloads": {"digits": {"target": 0.9, "target_metric": "val_acc1"}}}))
    for job, wd, val in ((0, 0.0, 0.80), (1, 1e-4, 0.70)):
        write_run(folder.study_dir("digits", "rmsprop") / str(job), optimizer="rmsprop", wd=wd,
                  val_acc=val, num=job)
    study = folder.study_dir("digits", "sgd")
    for job, momentum, wd in ((0, 0.9, 0.0), (1, 0.0, 1e-4)):
        config = write_run(study / str(job), optimizer="sgd", wd=wd, val_acc=0.85,
                           num=job) / ".hydra" / "config.yaml"
        config.write_text(config.read_text().replace("momentum: 0.0", f"momentum: {momentum}"))
    choices = study_choices(load_benchmark(folder.path), "val_acc1").set_index("optimizer")
    run, _ = chosen_run(load_runs([study]), "test_acc1", "val_acc1")
    assert run["run"] == str(study / "1")  # momentum 0 first: the study's own key order
    assert choices.loc["sgd", ["trial", "study_value"]].tolist() == [1, pytest.approx(0.85)]
    assert choices.loc["rmsprop", ["trial", "study_value", "best"]].tolist() == [
        0, pytest.approx(0.80), False]
    assert choices.loc["sgd", "best"]


def test_a_loss_is_named_on_its_lowest_study_value():
    rows = [run("trial", "A", 0, 0.3, 0.0), run("trial", "B", 0, 0.2, 0.0)]
    rows = [{**r, "final_val_loss": r["final_val_acc1"]} for r in rows]
    choices = study_choices(benchmark_from_rows(rows, ["A", "B"]), "val_loss")
    assert choices.loc[choices["best"], "optimizer"].tolist() == ["B"]


def test_the_power_statement_pools_each_workloads_counted_seeds_over_its_optimizers():
    # digits: A (0.70, 0.72, 0.74) squares 0.0004 + 0 + 0.0004, B (0.80, 0.81, 0.82) 0.0001 + 0 +
    # 0.0001: sd sqrt(0.001 / 4) = 0.0158 on 4 df; B's failed seed (0.10) is not counted.
    # cifar: A (0.5, 0.6) 0.005 on 1 df, B (0.5, 0.5) 0: sd sqrt(0.005 / 2) = 0.05 on 2 df
    rows = [run("confirmed", o, seed, 0.0, t, setting="lr=0.1", workload="digits")
            for o, tests in (("A", (0.70, 0.72, 0.74)), ("B", (0.80, 0.81, 0.82)))
            for seed, t in enumerate(tests)]
    rows.append(run("confirmed", "B", 3, 0.0, 0.10, status="failed", setting="lr=0.1"))
    rows += [run("confirmed", o, seed, 0.0, t, setting="lr=0.1", workload="cifar")
             for o, tests in (("A", (0.5, 0.6)), ("B", (0.5, 0.5))) for seed, t in enumerate(tests)]
    results = pd.DataFrame({"workload": ["digits", "digits", "cifar", "cifar"],
                            "optimizer": ["A", "B", "A", "B"], "n": [3, 3, 2, 2]})
    digits, cifar = power_lines(benchmark_from_rows(rows, ["A", "B"]), results, "test_acc1")
    assert "spread over seeds is 0.0158 (pooled over 2 optimizers, 4 degrees of freedom)" in digits
    assert "spread over seeds is 0.0500 (pooled over 2 optimizers, 2 degrees of freedom)" in cifar
    assert "with 3 seeds each and alpha 0.05/1" in digits
    detectable = float(digits.split("a true difference of ")[1].split(" ")[0])
    assert detectable == pytest.approx(detectable_difference(0.001 ** 0.5 / 2, None, 3, 0.05),
                                       abs=5e-5)


def test_tpes_random_draws_end_when_n_startup_trials_ended_complete_or_pruned():
    # failed trials count for nothing; diverged ones are complete (told their worst value)
    assert startup_draws(["completed", "failed", "diverged", "pruned", "completed"], 3) == 4
    assert startup_draws(["completed"] * 20, 10) == 10
    assert startup_draws(["completed"] * 4, 10) == 4
    assert startup_draws(["failed"] * 3, 1) == 3


def test_the_study_accounts_count_each_status_and_name_the_sampler(tmp_path, review_case):
    for name in ("A", "B"):
        hydra = tmp_path / name / ".hydra"
        hydra.mkdir(parents=True)
        (hydra / "hydra.yaml").write_text("hydra:\n  sweeper:\n    sampler:\n      _target_: "
                                          "optuna.samplers.TPESampler\n      n_startup_trials: 2\n")
    runs = review_case.runs
    trial = runs["role"] == "trial"
    runs.loc[trial, "run"] = [str(tmp_path / o) for o in runs.loc[trial, "optimizer"]]
    accounts = study_accounts(review_case, defaults_trials(review_case)).set_index("optimizer")
    assert accounts.loc["A", ["sampler", "random draws", "trials", "completed", "diverged"]
                        ].tolist() == ["TPESampler", 2, 3, 2, 1]
    assert accounts.loc["B", ["random draws", "trials", "completed"]].tolist() == [2, 2, 2]
    assert "4 of their 5 trials were random draws" in sampler_line(accounts.reset_index())
    # the defaults as the report read them once: A's trial 0 was queued, so one draw fewer
    queued = pd.DataFrame({"workload": ["digits"], "optimizer": ["A"], "trial": [0],
                           "left_out": [{}]})
    accounts = study_accounts(review_case, queued).set_index("optimizer")
    assert accounts.loc["A", ["defaults trial", "random draws"]].tolist() == [0, 1]
    assert accounts.loc["B", ["defaults trial", "random draws"]].tolist() == ["none", 2]
    assert "3 of their 5 trials were random draws" in sampler_line(accounts.reset_index())


def test_the_sampler_is_read_from_the_trials_hydra_yaml_and_unknown_without_one(tmp_path):
    assert study_sampler(tmp_path) == {}  # no .hydra/hydra.yaml
    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    (hydra / "hydra.yaml").write_text("hydra: [unclosed")
    assert study_sampler(tmp_path) == {}
    (hydra / "hydra.yaml").write_text("hydra:\n  sweeper:\n    sampler: {_target_: optuna."
                                      "samplers.RandomSampler, seed: 3}\n")
    assert study_sampler(tmp_path) == {"_target_": "optuna.samplers.RandomSampler", "seed": 3}
