"""A benchmark directory read as the answer to "which optimizer is best here, fairly compared?".

``python -m optsweep.benchmark`` leaves one folder per workload holding, per optimizer, the Optuna
study that tuned it (``<workload>/<optimizer>/``, one run per trial), the confirmation runs of the
study's chosen setting over new seeds (``<workload>/<optimizer>_confirm/``) and, optionally, every
optimizer at its defaults over the same seeds (``<workload>/defaults/``), plus ``benchmark.json``
(the protocol and each workload's target): ``optsweep.rundir.BenchmarkDir`` names that layout (the
benchmark writes it, the analysis reads it). This module turns the runs into tables: the confirmed
results, the trials behind the tuning-budget curves, and the times to target behind the
performance profile.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from optsweep.analysis.load import RunSet, load_runs
from optsweep.analysis.profile import SPENT, median_time, run_time_to_target, spent_until
from optsweep.analysis.sweeps import SEED
from optsweep.contract import (
    AUTO_OBJECTIVE,
    AVERAGED,
    BENCHMARK_CONFIRM_SUFFIX,
    BENCHMARK_DEFAULTS_DIR,
    FINAL,
    OPTIMIZATION_RESULTS_FILE,
    Status,
    maximize,
)
from optsweep.rundir import BenchmarkDir, RunDir

ROLES = ("trial", "confirmed", "defaults")


@dataclass
class Benchmark:
    root: Path
    manifest: dict  # benchmark.json: settings, workloads: {name: {target, target_metric}}, seeds
    runs: pd.DataFrame  # load_runs' runs with workload and role (trial, confirmed, defaults)
    runset: RunSet

    @property
    def workloads(self) -> list[str]:
        return list(self.manifest["workloads"])

    @property
    def optimizers(self) -> list[str]:
        return list(self.manifest["settings"]["optimizers"])

    def of(self, role: str) -> pd.DataFrame:
        return self.runs[self.runs["role"] == role]


def load_benchmark(root) -> Benchmark:
    """Every run of the benchmark at ``root``, each with its workload and role."""
    root = Path(root)
    return benchmark_of(root, BenchmarkDir(root).read_manifest(), load_runs([root]))


def benchmark_of(root, manifest: dict, runset: RunSet) -> Benchmark:
    """The runs of ``runset`` as the benchmark's at ``root`` (``manifest``: its benchmark.json),
    each with its workload and role read from its sweep's name as ``BenchmarkDir`` lays them out
    (``<workload>/<optimizer>``: trial; ``<workload>/<optimizer>_confirm``: confirmed;
    ``<workload>/defaults``)."""
    runs = runset.runs.copy()
    parts = runs["sweep"].str.split("/", n=1)
    runs["workload"] = parts.str[0]
    leaf = parts.str[-1]
    runs["role"] = np.where(leaf == BENCHMARK_DEFAULTS_DIR, "defaults",
                            np.where(leaf.str.endswith(BENCHMARK_CONFIRM_SUFFIX), "confirmed",
                                     "trial"))
    return Benchmark(Path(root), manifest, runs, runset)


def benchmark_from_rows(rows: list[dict], optimizers: list[str]) -> Benchmark:
    """A benchmark of runs given as rows, without folders or metrics (the tests' hand-computed
    cases; benchmarks/calibration.py's check of its fast path against ``results_table``): each
    row a runs row (run, sweep named as the layout names it, dataset, optimizer, setting, status,
    job, trainer.seed, final_* values); each sweep's settings told apart by the optimizer alone;
    the workloads those of the sweeps, in their order, without targets."""
    runs = pd.DataFrame(rows)
    runset = RunSet(runs=runs, metrics=pd.DataFrame({"run": []}),
                    swept={sweep: ["optimizer"] for sweep in runs["sweep"].unique()})
    bench = benchmark_of(".", {"settings": {"optimizers": list(optimizers)}}, runset)
    bench.manifest["workloads"] = {w: {} for w in dict.fromkeys(bench.runs["workload"])}
    return bench


def comparison(bench: Benchmark, role: str) -> RunSet:
    """The runs of ``role`` as one comparison per workload (sweep = workload, setting =
    optimizer), ready for ``tables.setting_table`` and ``stats.compare_to_best``."""
    runs = bench.of(role).copy()
    runs["sweep"], runs["setting"] = runs["workload"], runs["optimizer"].astype(str)
    metrics = bench.runset.metrics
    metrics = metrics[metrics["run"].isin(runs["run"])]
    return RunSet(runs=runs.reset_index(drop=True), metrics=metrics,
                  swept={w: ["optimizer"] for w in dict.fromkeys(runs["workload"])})


def study_choices(bench: Benchmark, select: str) -> pd.DataFrame:
    """Per workload x optimizer: the trial its study chose (``trial``, its number: the trial the
    confirmation reruns; None where no trial may be chosen), the ``select`` value it was chosen
    on (``study_value``: its setting's mean over the study's trials), and ``best``: True for the
    one optimizer per workload named best (the best of these values; the first in the
    benchmark's order among equals). Chosen by ``tables.chosen_runs``, the rule
    ``optsweep.confirm`` chose the confirmed trial by, on the same trials: a benchmark's runs
    name each study's settings as a load of that study alone does (``load.load_runs``), so the
    two cannot choose differently.

    The best is named here, on the studies' own trials, and not on the confirmation runs: those
    are the runs the verdicts test, and a run's validation and test numbers share its seed effect,
    so a best named on their validation mean is lucky on their test mean too (under the global
    null, with 23 optimizers, 10 seeds and 90% of the variance shared: a false "beyond noise" in
    16% of benchmarks; benchmarks/calibration.py). The studies ran on a seed the confirmation
    runs do not use (``confirm.new_seeds``)."""
    from optsweep.analysis.tables import CHOSEN_VALUE, chosen_runs

    trials = bench.of("trial")
    chosen = chosen_runs(RunSet(runs=trials, metrics=bench.runset.metrics,
                                swept=bench.runset.swept), select)
    picked = {(str(r["workload"]), str(r["optimizer"])): r for r in chosen.to_dict("records")}
    rows = []
    for workload in bench.workloads:
        for optimizer in bench.optimizers:
            pick = picked.get((workload, optimizer))
            job = "" if pick is None else str(pick["job"])  # a trial's folder: its number
            rows.append({"workload": workload, "optimizer": optimizer,
                         "trial": int(job) if job.isdigit() else None,
                         "study_value": math.nan if pick is None else pick[CHOSEN_VALUE]})
    table = pd.DataFrame(rows, columns=["workload", "optimizer", "trial", "study_value"])
    table["trial"] = table["trial"].astype("Int64")
    table["best"] = False
    for _, mine in table.groupby("workload", sort=False):
        scored = mine["study_value"].dropna()
        if len(scored):
            table.loc[scored.idxmax() if maximize(select) else scored.idxmin(), "best"] = True
    return table


def study_sampler(run_dir) -> dict:
    """The sampler a trial's study drew it with, as the trial's ``.hydra/hydra.yaml`` records
    ``hydra.sweeper.sampler`` (its ``_target_`` and arguments); {} where none is recorded (no
    readable file: the sampler is unknown)."""
    return dict((RunDir(run_dir).hydra_config().get("sweeper") or {}).get("sampler") or {})


def startup_draws(statuses: list[str], n_startup: int) -> int:
    """How many trials, in trial order, TPE drew at random: it samples at random until
    ``n_startup`` trials have ended complete or pruned (Optuna counts those; a diverged trial was
    told its worst value, so it is complete; a failed one counts for nothing). Exact for one trial
    in flight at a time; with several, the trials asked before those ended are random too."""
    ended, drawn = 0, 0
    for status in statuses:
        if ended >= n_startup:
            break
        drawn += 1
        ended += status in (*FINAL, Status.PRUNED)
    return drawn


STUDY_COUNTS = ("trials", *(str(s) for s in (Status.COMPLETED, Status.EARLY_STOPPED,
                                             Status.DIVERGED, Status.PRUNED, Status.FAILED)))


def study_accounts(bench: Benchmark, defaults: pd.DataFrame) -> pd.DataFrame:
    """Per workload x optimizer study: its sampler (the class), the trial that ran the
    optimizer's defaults (queued, not drawn; ``defaults``: ``defaults_trials``), the trials it
    drew at random before the sampler's model took over (TPE's start-up; every other trial for
    random search), and how many of its trials ended in each status."""
    trials = bench.of("trial")
    trials = trials[trials["job"].astype(str).str.isdigit()]
    enqueued = {(r.workload, r.optimizer): int(r.trial) for r in defaults.itertuples()
                if r.trial is not None and not pd.isna(r.trial)}
    rows = []
    for (workload, optimizer), mine in trials.groupby(["workload", "optimizer"], sort=False):
        mine = mine.assign(number=mine["job"].astype(int)).sort_values("number")
        sampler = study_sampler(mine["run"].iloc[0])
        name = str(sampler.get("_target_", "unknown")).rsplit(".", 1)[-1]
        statuses = [str(s) for s in mine["status"]]
        if name == "TPESampler":
            random = startup_draws(statuses, int(sampler.get("n_startup_trials", 10)))
        else:
            random = len(statuses) if name == "RandomSampler" else math.nan
        defaults = enqueued.get((workload, str(optimizer)))
        random -= defaults is not None and defaults < random  # queued, not drawn
        counts = pd.Series(statuses).value_counts()
        rows.append({"workload": workload, "optimizer": str(optimizer), "sampler": name,
                     "defaults trial": "none" if defaults is None else defaults,
                     "random draws": random, "trials": len(statuses),
                     **{c: int(counts.get(c, 0)) for c in STUDY_COUNTS[1:]}})
    return pd.DataFrame(rows, columns=["workload", "optimizer", "sampler", "defaults trial",
                                       "random draws", *STUDY_COUNTS])


def trials_table(bench: Benchmark) -> pd.DataFrame:
    """One row per study trial that gave a value (completed or diverged; pruned and failed trials
    have none): workload, optimizer, trial (its number), value (the study's objective at the
    final epoch, as Optuna scored it; a diverged trial's at chance, as load.py counts it, not the
    worst value Optuna was told: WORST_LOSS, 1e9, would be a loss objective's expected best), lr."""
    trials = bench.of("trial")
    trials = trials[trials["status"].isin(FINAL) & trials["job"].str.isdigit()]
    return pd.DataFrame({
        "workload": trials["workload"], "optimizer": trials["optimizer"].astype(str),
        "trial": trials["job"].astype(int),
        "value": trials[f"final_{objective_of(bench)}"].astype(float),
        "lr": pd.to_numeric(trials.get("optimizer.lr"), errors="coerce"),
        "status": trials["status"]}).sort_values(["workload", "optimizer", "trial"])


def objective_of(bench: Benchmark) -> str:
    """The metric the studies optimised (one for the whole benchmark)."""
    names = bench.of("trial")["objective_name"].dropna()
    return str(names.iloc[0]) if len(names) else AUTO_OBJECTIVE


def run_times(bench: Benchmark) -> pd.DataFrame:
    """One row per counted confirmation run: workload, optimizer, metric, target, its seed
    (trainer.seed), and the epochs and seconds until its validation curve reached the workload's
    target, and the steps, passes and seconds with evaluation spent until then (``profile.SPENT``;
    inf: never; nan: not recorded, a run from before they were)."""
    confirmed = bench.of("confirmed")
    confirmed = confirmed[confirmed["status"].isin(AVERAGED)]
    metrics = bench.runset.metrics
    rows = []
    for workload, spec in bench.manifest["workloads"].items():
        metric, target = spec["target_metric"], float(spec["target"])
        mine = confirmed[confirmed["workload"] == workload]
        for run, optimizer, seed in zip(mine["run"], mine["optimizer"], mine[SEED]):
            curve = metrics[metrics["run"] == run].pivot_table(
                index="epoch", columns="metric", values="value").sort_index()
            if metric not in curve.columns:
                continue
            epochs, seconds = run_time_to_target(curve[metric].tolist(),
                                                 _column(curve, "epoch_seconds"), target, metric)
            spent = {measure: sum(spent_until(_column(curve, c), epochs) for c in columns)
                     for measure, columns in SPENT.items()}
            rows.append({"workload": workload, "optimizer": optimizer, "metric": metric,
                         "target": target, SEED: seed, "epochs": epochs, "seconds": seconds,
                         **spent})
    return pd.DataFrame(rows, columns=["workload", "optimizer", "metric", "target", SEED,
                                       "epochs", "seconds", *SPENT])


def _column(curve: pd.DataFrame, name: str) -> list:
    """One metric of a run's per-epoch curve (epochs as rows), nan at every epoch where the run
    did not record it."""
    return curve.get(name, pd.Series(math.nan, index=curve.index)).tolist()


def times_to_target(bench: Benchmark, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per workload x optimizer: the confirmation runs' median epochs and seconds (and steps,
    passes, seconds with evaluation: ``profile.SPENT``) until the workload's target is reached on
    validation (inf: never, or no confirmation run), from ``run_times`` (computed here unless
    given)."""
    runs = run_times(bench) if runs is None else runs
    rows = []
    for workload, spec in bench.manifest["workloads"].items():
        for optimizer in bench.optimizers:
            mine = runs[(runs["workload"] == workload) & (runs["optimizer"] == optimizer)]
            rows.append({"workload": workload, "optimizer": optimizer,
                         "metric": spec["target_metric"], "target": float(spec["target"]),
                         "runs": len(mine), **{m: median_time(mine[m].tolist())
                                               for m in ("epochs", "seconds", *SPENT)}})
    return pd.DataFrame(rows, columns=["workload", "optimizer", "metric", "target", "runs",
                                       "epochs", "seconds", *SPENT])


def defaults_trials(bench: Benchmark) -> pd.DataFrame:
    """One row per study: workload, optimizer, trial (the number of the trial that ran the
    optimizer's defaults; None where none did) and left_out ({key: why} of the defaults its space
    could not hold, which that trial drew instead), as the sweeper wrote them
    (``optimization_results.yaml``, ``defaults``; no file: the study has not ended)."""
    rows = []
    for workload in bench.workloads:
        for optimizer in bench.optimizers:
            path = BenchmarkDir(bench.root).study_dir(workload, optimizer) / \
                OPTIMIZATION_RESULTS_FILE
            if not path.is_file():
                continue
            with path.open(encoding="utf-8") as f:
                first = (yaml.safe_load(f) or {}).get("defaults") or {}
            rows.append({"workload": workload, "optimizer": optimizer,
                         "trial": first.get("trial"), "left_out": first.get("left_out") or {}})
    return pd.DataFrame(rows, columns=["workload", "optimizer", "trial", "left_out"])
