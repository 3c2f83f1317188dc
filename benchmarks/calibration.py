"""Is the benchmark's answer calibrated? Its own selection and statistics run on simulated
benchmarks whose truth is known (workload=simulated's model, optsweep/simulate/model.py).

What is measured (the benchmark's protocol: the best named on the studies' own trials, each
optimizer's study best val_acc1 at the study's seed (benchmark.study_choices), compared with every
other optimizer on the confirmation runs' test_acc1 (new seeds), Welch + Holm, alpha 0.05, signed
verdicts: a false "beyond noise" is either sign, a found difference is "worse beyond noise" for
every other optimizer; --selection confirmation measures the protocol before it, the best named on
the confirmation runs' own val_acc1 mean):
- the null: all optimizers identical; the family-wise rate of any "beyond noise" verdict, with its
  95% Clopper-Pearson interval, for optimizers K, seeds n and rho (the share of a run's variance
  shared by its val and test numbers: seed effects over seed effects plus binomial noise);
- power: one optimizer better by 1, 2, 3 run sds, beside stats.t_test_power's prediction;
- P(the truly best optimizer is named best) against the budget for TPE, random and QMC studies
  (in-process Optuna, the sweeper's spaces and sampler defaults), and the winner's curse;
- one benchmark end to end (python -m optsweep.benchmark on workloads=[simulated]).

The confirmation stage is drawn vectorised from the model's own final-epoch distributions
(run_rows at the last epoch: chance + margin + seed effects, binomial val and test draws), the
study's best trial as one more run at a seed of its own (the max over trials adds a winner's curse
alike for every optimizer, which moves no optimizer's odds of being named under the null), and
tested with scipy's ttest_ind over arrays, the function stats.welch calls one pair at a time; the
verdicts come from stats.holm_verdicts and the "beyond noise" rule from benchmark_report.answer.
For a few hundred of these benchmarks the same runs also go through benchmark_report.results_table
(setting_table, compare_to_best): the script stops unless both name the same best and give the
same verdict strings. Torch-free.

    python benchmarks/calibration.py            # the full table: ~15-20 min on 2 cores
    python benchmarks/calibration.py --quick    # small counts: seconds (tests/test_calibration.py)
"""
from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from scipy import stats as sps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optsweep import contract  # noqa: E402
from optsweep.analysis import stats  # noqa: E402
from optsweep.analysis.benchmark import benchmark_from_rows  # noqa: E402
from optsweep.analysis.benchmark_report import results_table  # noqa: E402
from optsweep.simulate import model  # noqa: E402

SIM = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/workload/simulated.yaml")["simulate"])
RUN_SD = 0.008  # accuracy: a run's total sd over seeds in the null and power cells
NULL = {"K": (2, 4, 8, 23), "seeds": (2, 3, 5, 10), "rho": (0.0, 0.5, 0.9)}
POWER = {"K": (2, 4), "seeds": (2, 3, 5, 10), "delta": (1, 2, 3), "rho": 0.5}
BUDGETS = (5, 10, 20, 40)
# tpe: the sweeper's default (10 start-up trials); tpe_scaled: start-up scaled to the budget
# (startup_for); qmc: as the sweeper configures it (unscrambled Sobol); qmc_scrambled: scrambled,
# seeded per benchmark (quasi-random search, as AlgoPerf's external tuning)
SAMPLERS = ("tpe", "tpe_scaled", "random", "qmc", "qmc_scrambled")
PREFIX = ("tpe", "random", "qmc", "qmc_scrambled")  # samplers that do not know the budget
STUDY = ("adam", "sgd", "lion", "soap")  # lion truly best by BEST_BY run sds; the others equal
BEST, BEST_BY, STUDY_SEEDS = "lion", 1.5, 5
COUNTS = {"full": {"null": 5000, "power": 2000, "proof": 400, "study": 300},
          "quick": {"null": 300, "power": 300, "proof": 30, "study": 4}}


# --- the confirmation stage, fast ---------------------------------------------------------------

def noise_for(rho: float, p: float, shared_sd: float = 0.0) -> dict:
    """simulate keys whose run sd is RUN_SD with ``rho`` of its variance in the seed effects
    (val_size = test_size, so that rho is the val-test correlation of one run)."""
    seed_var = rho * RUN_SD ** 2 - shared_sd ** 2
    size = round(p * (1 - p) / ((1 - rho) * RUN_SD ** 2))
    return {**SIM, "seed_shared_sd": shared_sd, "seed_sd": math.sqrt(max(seed_var, 0.0)),
            "val_size": size, "test_size": size}


def draw(rng, sim: dict, val_means, test_gap: float, benchmarks: int, seeds: int):
    """(val, test) final accuracies, shape (benchmarks, K, seeds): run_rows' last epoch."""
    k = len(val_means)
    shared = rng.normal(0.0, sim["seed_shared_sd"], (benchmarks, 1, seeds))
    own = rng.normal(0.0, sim["seed_sd"], (benchmarks, k, seeds))
    p = np.clip(np.asarray(val_means)[None, :, None] + shared + own, 0.0, 1.0)
    val = rng.binomial(int(sim["val_size"]), p) / int(sim["val_size"])
    test = rng.binomial(int(sim["test_size"]), np.clip(p + test_gap, 0, 1)) / int(sim["test_size"])
    return val, test


def draw_study(rng, sim: dict, val_means, test_gap: float, benchmarks: int) -> np.ndarray:
    """Each study's best trial's val_acc1, shape (benchmarks, K): one run of the setting at the
    study's own seed (shared by the K studies, as the protocol seeds every study alike)."""
    return draw(rng, sim, val_means, test_gap, benchmarks, 1)[0][:, :, 0]


def named_best(val, study, selection: str) -> np.ndarray:
    """The named best per benchmark: the best study value (the benchmark's rule), or with
    ``selection`` "confirmation" the best confirmation val mean (the rule before it); the first
    of equals, as study_choices' and best_settings' idxmax."""
    return (val.mean(axis=2) if selection == "confirmation" else study).argmax(axis=1)


def fast_verdicts(val, test, study,
                  selection: str = "study") -> tuple[np.ndarray, list[list[dict]]]:
    """(the named best per benchmark, its comparisons as stats.holm_verdicts returns them)."""
    b, k, n = val.shape
    best = named_best(val, study, selection)
    others = np.array([[j for j in range(k) if j != i] for i in best])
    rows = np.arange(b)[:, None]
    p = sps.ttest_ind(test[rows, best[:, None]], test[rows, others], axis=2,
                      equal_var=False).pvalue
    difference = test[rows, others].mean(axis=2) - test[rows, best[:, None]].mean(axis=2)
    families = [stats.holm_verdicts([{"sweep": "w", "dataset": "simulated", "setting": j,
                                      "n_best": n, "n": n, "difference": float(d),
                                      "p_value": float(q)}
                                     for j, d, q in zip(others[i], difference[i], p[i])])
                for i in range(b)]
    return best, families


def names(k: int) -> list[str]:
    return [f"o{j:02d}" for j in range(k)]  # sorted = index order: the table's order


def report_path(val, test, study) -> tuple[list[str], list[dict]]:
    """The same benchmarks through benchmark_report.results_table: (named best, {optimizer:
    verdict}) per benchmark, each benchmark one workload of one Benchmark, each study one trial
    whose val_acc1 is the study's value."""
    b, k, n = val.shape
    label = names(k)
    trials = [{"run": f"w{i:04d}/{label[j]}/0", "sweep": f"w{i:04d}/{label[j]}",
               "dataset": "simulated", "optimizer": label[j], "setting": "lr=0.1",
               "status": "completed", "final_val_acc1": study[i, j],
               "final_test_acc1": math.nan, "final_test_acc5": math.nan, "best_epoch": 1.0,
               "wall_seconds": 0.0, "trainer.seed": 0, "job": "0"}
              for i in range(b) for j in range(k)]
    rows = [{"run": f"w{i:04d}/{label[j]}_confirm/{s}", "sweep": f"w{i:04d}/{label[j]}_confirm",
             "dataset": "simulated", "optimizer": label[j], "setting": label[j],
             "status": "completed", "final_val_acc1": val[i, j, s],
             "final_test_acc1": test[i, j, s], "final_test_acc5": test[i, j, s],
             "best_epoch": 1.0, "wall_seconds": 0.0, "trainer.seed": s + 1, "job": str(s)}
            for i in range(b) for j in range(k) for s in range(n)]
    results, _ = results_table(benchmark_from_rows(trials + rows, label), "test_acc1", "val_acc1")
    named, verdicts = [], []
    for _, mine in results.groupby("workload", sort=True):
        named.append(mine.loc[mine["verdict"] == "best", "optimizer"].iloc[0])
        verdicts.append(dict(zip(mine["optimizer"], mine["verdict"])))
    return named, verdicts


def prove(rng, benchmarks: int) -> str:
    """The fast path's verdicts are the report's: raises on the first benchmark that differs."""
    checked = 0
    for k, n, rho in [(2, 2, 0.9), (4, 3, 0.5), (8, 5, 0.0), (23, 2, 0.9)]:
        sim = noise_for(rho, 0.8)
        val, test = draw(rng, sim, [0.8] * k, -0.01, benchmarks // 4, n)
        study = draw_study(rng, sim, [0.8] * k, -0.01, benchmarks // 4)
        best, families = fast_verdicts(val, test, study)
        named, verdicts = report_path(val, test, study)
        for i, family in enumerate(families):
            fast = {names(k)[row["setting"]]: row["verdict"] for row in family}
            fast[names(k)[best[i]]] = "best"
            if names(k)[best[i]] != named[i] or fast != verdicts[i]:
                raise SystemExit(f"the fast path differs from results_table at K={k}, n={n}, "
                                 f"rho={rho}, benchmark {i}: {fast} vs {verdicts[i]}")
            single = [stats.welch(test[i, best[i]], test[i, j]) for j in range(k) if j != best[i]]
            fast_p = [row["p_value"] for row in family]
            if not np.allclose(single, fast_p, rtol=1e-9, atol=0, equal_nan=True):
                raise SystemExit(f"vectorised Welch differs from stats.welch: {fast_p} vs {single}")
        checked += len(families)
    return (f"Fast path checked against benchmark_report.results_table on {checked} simulated "
            "benchmarks (K 2-23, 2-5 seeds): the same best and the same verdict strings in every "
            "one; its Welch p-values equal stats.welch's, pair by pair.")


def null_cell(task) -> dict:
    k, n, rho, benchmarks, seed, selection = task
    rng = np.random.default_rng(seed)
    adam = model.OptimizerModel.of(SIM, "adam")
    mean = model.chance(SIM) + model.final_margin(SIM, adam, {"lr": adam.lr})
    sim = noise_for(rho, mean)
    val, test = draw(rng, sim, [mean] * k, adam.test_gap, benchmarks, n)
    study = draw_study(rng, sim, [mean] * k, adam.test_gap, benchmarks)
    _, families = fast_verdicts(val, test, study, selection)
    any_beyond = sum(any(r["outcome"] in stats.BEYOND_NOISE for r in f) for f in families)
    low, high = sps.binomtest(any_beyond, benchmarks).proportion_ci(0.95, method="exact")
    achieved = np.corrcoef((val - val.mean(axis=2, keepdims=True)).ravel(),
                           (test - test.mean(axis=2, keepdims=True)).ravel())[0, 1]
    return {"K": k, "seeds": n, "rho": rho, "rho achieved": round(float(achieved), 3),
            "benchmarks": benchmarks, "any beyond noise": any_beyond / benchmarks,
            "95% CI low": low, "95% CI high": high}


def power_cell(task) -> dict:
    k, n, delta, benchmarks, seed, selection = task
    rng = np.random.default_rng(seed)
    sim = noise_for(POWER["rho"], 0.8)
    means = [0.8] * (k - 1) + [0.8 + delta * RUN_SD]  # the better one last: ties favour the first
    val, test = draw(rng, sim, means, -0.01, benchmarks, n)
    study = draw_study(rng, sim, means, -0.01, benchmarks)
    best, families = fast_verdicts(val, test, study, selection)
    named = best == k - 1
    found = [named[i] and all(r["outcome"] == stats.Verdict.WORSE for r in f)
             for i, f in enumerate(families)]
    per_pair = np.mean([named[i] and r["outcome"] == stats.Verdict.WORSE
                        for i, f in enumerate(families) for r in f])
    alpha = stats.ALPHA / (k - 1)  # Holm's first step (Bonferroni): a lower bound of Holm's power
    return {"K": k, "seeds": n, "difference (run sds)": delta, "benchmarks": benchmarks,
            "named best": named.mean(), "found (each pair)": per_pair,
            "found (all pairs)": float(np.mean(found)),
            "predicted, Welch df 2(n-1)": stats.t_test_power(delta, 1.0, n, alpha),
            "predicted, pooled df K(n-1)": stats.t_test_power(delta, 1.0, n, alpha, k * (n - 1)),
            "detectable (run sds)": stats.detectable_difference(1.0, None, n, alpha)}


# --- the tuning stage: in-process Optuna studies ------------------------------------------------

def study_sim() -> dict:
    """Default noise; every optimizer's peak 0.80 and test_gap -0.01 but BEST's, BEST_BY run sds
    (shared seed effect + own + binomial test noise) above."""
    sim = {**SIM, "optimizers": {o: dict(SIM["optimizers"][o]) for o in STUDY}}
    sd = run_sd(sim, 0.79)
    for o in STUDY:
        sim["optimizers"][o].update(peak=0.80, test_gap=-0.01)
    sim["optimizers"][BEST]["peak"] = round(0.80 + BEST_BY * sd, 4)
    return sim


def run_sd(sim: dict, p: float) -> float:
    return math.sqrt(sim["seed_shared_sd"] ** 2 + sim["seed_sd"] ** 2
                     + p * (1 - p) / sim["test_size"])


def space_of(optimizer: str):
    from optsweep.sweep.search_space import parse
    params = OmegaConf.to_container(OmegaConf.load(ROOT / f"conf/space/{optimizer}.yaml"))
    space, fixed = parse(params, None, [])
    defaults = OmegaConf.to_container(OmegaConf.load(ROOT / f"conf/optimizer/{optimizer}.yaml"))
    return space, {k: v for k, v in defaults.items() if not k.startswith("_")}, fixed


def startup_for(budget: int) -> int:
    """tpe_scaled's n_startup_trials: a quarter of the budget, at least 2, at most TPE's 10."""
    return min(10, max(2, budget // 4))


def sampler(name: str, seed: int, number: int, budget: int | None = None):
    """As the sweeper builds it (optsweep/sweep/_optuna_impl.py SamplerFactory, tune.yaml's seed,
    optuna_config.py's defaults): TPE and random reseeded seed + trial number, QMC kept."""
    import optuna
    if name in ("tpe", "tpe_scaled"):
        startup = startup_for(budget) if name == "tpe_scaled" else 10
        return optuna.samplers.TPESampler(seed=seed + number, n_startup_trials=startup,
                                          n_ei_candidates=24, group=False)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed + number)
    return optuna.samplers.QMCSampler(seed=seed, qmc_type="sobol",
                                      scramble=name == "qmc_scrambled")


def tuned(sim: dict, optimizer: str, how: str, b: int, study_seed: int,
          budget: int = max(BUDGETS)) -> list[tuple]:
    """(objective, setting) of each of ``budget`` trials, trial 0 the optimizer's defaults (as
    sweep=tune's enqueue_defaults queues them): for a sampler of PREFIX trial n is the same in a
    shorter study, so one study of max(BUDGETS) gives every budget's prefix."""
    import optuna

    from optsweep.sweep.search_space import defaults as held_defaults
    space, defaults, fixed = space_of(optimizer)
    study = optuna.create_study(direction="maximize", sampler=sampler(how, b, 0, budget))
    first, _ = held_defaults(space, {"optimizer": defaults})
    study.enqueue_trial(first)
    trials = []
    for number in range(budget):
        if not how.startswith("qmc") or number == 0:
            study.sampler = sampler(how, b, number, budget)
        trial = study.ask(space)
        setting = {**defaults, **{k.split(".", 1)[1]: v for k, v in trial.params.items()}}
        rows, diverged = model.run_rows(sim, optimizer, setting, study_seed, 10,
                                        f"{b}/{how}/{optimizer}/{number}")
        value = rows[-1]["val_acc1"] if rows and diverged is None else contract.worst_value(
            "val_acc1")
        study.tell(trial, value)
        trials.append((value, setting))
    return trials


def study_cell(task) -> list[dict]:
    how, first, count = task
    warnings.filterwarnings("ignore")
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sim = study_sim()
    out = []
    for b in range(first, first + count):
        study_seed = 100 * b  # confirmation seeds: the next ones, as confirm.new_seeds
        if how in PREFIX:
            longest = {o: tuned(sim, o, how, b, study_seed) for o in STUDY}
        for budget in BUDGETS:
            trials = longest if how in PREFIX else {
                o: tuned(sim, o, how, b, study_seed, budget) for o in STUDY}
            val_means, values, row = {}, {}, {"sampler": how, "budget": budget}
            for o in STUDY:
                value, setting = max(trials[o][:budget], key=lambda t: t[0])  # first of equals
                values[o] = value
                truth = model.truth(sim, o, setting, 10, 0.7, "val_acc1")
                confirmed = [model.run_rows(sim, o, setting, study_seed + s, 10,
                                            f"{b}/{how}/{budget}/{o}/c{s}")[0]
                             for s in range(1, STUDY_SEEDS + 1)]
                val_means[o] = np.mean([r[-1]["val_acc1"] for r in confirmed])
                test_mean = np.mean([r[-1]["test_acc1"] for r in confirmed])
                row[f"{o} val - truth"] = value - truth["val_acc1"]
                row[f"{o} test - truth"] = test_mean - truth["test_acc1"]
            row["named best"] = max(STUDY, key=lambda o: values[o])  # study_choices' rule
            row["named best (confirmation)"] = max(STUDY, key=lambda o: val_means[o])
            out.append(row)
    return out


# --- end to end -----------------------------------------------------------------------------------

def end_to_end(out: Path) -> subprocess.Popen:
    sim = study_sim()
    peaks = [f"simulate.optimizers.{o}.peak={sim['optimizers'][o]['peak']}" for o in STUDY]
    gaps = [f"simulate.optimizers.{o}.test_gap=-0.01" for o in STUDY]
    command = [sys.executable, "-m", "optsweep.benchmark", "workloads=[simulated]",
               f"optimizers=[{','.join(STUDY)}]", "budget=20", f"seeds={STUDY_SEEDS}",
               f"dir={out}", *peaks, *gaps]
    print("End to end:", " ".join(command[1:]), flush=True)
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def end_to_end_lines(process: subprocess.Popen, out: Path, started: float) -> list[str]:
    from optsweep.analysis.benchmark import load_benchmark
    log, _ = process.communicate()
    if process.returncode:
        return [f"End to end FAILED (exit {process.returncode}): {log[-2000:]}"]
    results, _ = results_table(load_benchmark(out), "test_acc1", "val_acc1")
    named = results.loc[results["verdict"] == "best", "optimizer"].iloc[0]
    lines = [f"End to end: {time.perf_counter() - started:.0f} s; named {named} best, the truth's "
             f"best is {BEST}."]
    lines += [f"  {r.optimizer}: confirmed test_acc1 {r.mean:.4f}, truth {r.truth:.4f}, "
              f"{r.verdict}" for r in results.itertuples()]
    return lines


# --- the table ----------------------------------------------------------------------------------

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, seconds; no end to end")
    parser.add_argument("--processes", type=int, default=2, help="at most 2 on shared cores")
    parser.add_argument("--selection", choices=("study", "confirmation"), default="study",
                        help="name the best on the studies' trials (the benchmark's rule) or on "
                             "the confirmation runs' val_acc1 mean (the rule before it)")
    args = parser.parse_args(argv)
    counts = COUNTS["quick" if args.quick else "full"]
    started = time.perf_counter()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    print(contract.SIMULATED_NOTE)
    rule = ("the confirmation runs' val_acc1 mean (the rule before the benchmark's)"
            if args.selection == "confirmation" else "each study's best val_acc1 (the benchmark's)")
    print(f"Calibration ({'quick' if args.quick else 'full'}): best named on {rule}, Welch + Holm "
          "on the confirmation runs' test_acc1, alpha 0.05, signed verdicts (a false 'beyond "
          "noise' of either sign).", flush=True)
    e2e_dir = Path(tempfile.mkdtemp(prefix="calibration_"))
    e2e = None if args.quick else end_to_end(e2e_dir / "benchmark")
    print(prove(np.random.default_rng(1), counts["proof"]), flush=True)
    with multiprocessing.get_context("spawn").Pool(min(args.processes, 2)) as pool:
        null = [(k, n, rho, counts["null"], 1000 + i, args.selection) for i, (k, n, rho) in
                enumerate(itertools.product(NULL["K"], NULL["seeds"], NULL["rho"]))]
        power = [(k, n, d, counts["power"], 5000 + i, args.selection) for i, (k, n, d) in
                 enumerate(itertools.product(POWER["K"], POWER["seeds"], POWER["delta"]))]
        chunk = max(1, counts["study"] // 4)
        studies = [(how, first, min(chunk, counts["study"] - first)) for how in SAMPLERS
                   for first in range(0, counts["study"], chunk)]
        study_rows = pool.map_async(study_cell, studies)
        null_rows = pool.map(null_cell, null)
        power_rows = pool.map(power_cell, power)
        study_rows = [row for part in study_rows.get() for row in part]
    print_null(pd.DataFrame(null_rows))
    print_power(pd.DataFrame(power_rows))
    print_studies(pd.DataFrame(study_rows), counts["study"])
    if e2e is not None:
        print("\n".join(end_to_end_lines(e2e, e2e_dir / "benchmark", started)))
    print(f"Wall time: {time.perf_counter() - started:.0f} s "
          f"on {min(args.processes, 2)} processes.")


def print_null(table: pd.DataFrame) -> None:
    print(f"\nNull (all optimizers identical; run sd {RUN_SD}, no shared seed effect: Welch treats "
          "the optimizers' runs as independent): share of benchmarks with any 'beyond noise' "
          "verdict, 95% Clopper-Pearson interval. Target: at most 0.05.")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def print_power(table: pd.DataFrame) -> None:
    print(f"\nPower (rho {POWER['rho']}; one optimizer better by the difference, in run sds, on "
          "val and test; the rest equal): 'each pair': the share of (best, other) comparisons "
          "where the truly best is named and the other is beyond noise; 'all pairs': named and "
          "every other beyond noise. Predicted: stats.t_test_power at Holm's first-step alpha "
          "0.05 / (K - 1), with Welch's 2(n - 1) df or the pooled K(n - 1).")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def print_studies(rows: pd.DataFrame, per_cell: int) -> None:
    sim = study_sim()
    peaks = ", ".join(f"{o} {sim['optimizers'][o]['peak']}" for o in STUDY)
    print(f"\nTuning: {per_cell} simulated benchmarks per cell; {', '.join(STUDY)} (peaks {peaks}: "
          f"{BEST} {BEST_BY} run sds above; test_gap -0.01 each; default noise), each tuned in its "
          f"conf/space/ space, the chosen trial confirmed over {STUDY_SEEDS} new seeds; "
          "the sampler "
          "seeded per benchmark (the protocol seeds every study alike); trial 0 of every study "
          "the optimizer's defaults (sweep=tune's enqueue_defaults). tpe: 10 start-up trials; "
          "tpe_scaled: startup_for(budget) = min(10, max(2, budget // 4)); qmc as the sweeper "
          "configures it (sobol, scramble false: the same points in every study); qmc_scrambled: "
          "scrambled, seeded per benchmark.")
    for column, rule in (("named best", "on each study's best trial (the benchmark's rule)"),
                         ("named best (confirmation)", "on the confirmation runs' val_acc1 mean")):
        rows["truly best named"] = rows[column] == BEST
        named = rows.pivot_table(index="budget", columns="sampler", values="truly best named")
        print(f"P(the truly best optimizer is named best), named {rule}:")
        print(named.to_string(float_format=lambda v: f"{v:.3f}"))
    curse = []
    for (how, budget), part in rows.groupby(["sampler", "budget"]):
        val = part[[f"{o} val - truth" for o in STUDY]].to_numpy().ravel()
        test = part[[f"{o} test - truth" for o in STUDY]].to_numpy().ravel()
        curse.append({"sampler": how, "budget": budget, "chosen val - truth: mean": val.mean(),
                      "sd": val.std(ddof=1), "confirmed test - truth: mean": test.mean(),
                      "sd ": test.std(ddof=1)})
    print("Winner's curse (over studies and optimizers; accuracy):")
    print(pd.DataFrame(curse).to_string(index=False, float_format=lambda v: f"{v:+.4f}"))


if __name__ == "__main__":
    main()
