"""A benchmark directory read as the answer to "which optimizer is best here, fairly compared?".

``python -m optsweep.benchmark`` leaves one folder per workload holding, per optimizer, the Optuna
study that tuned it (``<workload>/<optimizer>/``, one run per trial), the confirmation runs of the
study's chosen setting over new seeds (``<workload>/<optimizer>_confirm/``) and, optionally, every
optimizer at its defaults over the same seeds (``<workload>/defaults/``), plus ``benchmark.json``
(the protocol and each workload's target). This module names that layout (the benchmark writes
it, the analysis reads it) and turns the runs into tables: the confirmed results, the trials
behind the tuning-budget curves, and the times to target behind the performance profile.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from optsweep.analysis.load import RunSet, load_runs
from optsweep.analysis.profile import median_time, run_time_to_target
from optsweep.contract import AVERAGED, FINAL, OPTIMIZATION_RESULTS_FILE

MANIFEST = "benchmark.json"
DEFAULTS = "defaults"  # the folder of the optimizers at their defaults
CONFIRM_SUFFIX = "_confirm"
ROLES = ("trial", "confirmed", "defaults")


def study_dir(root, workload: str, optimizer: str) -> Path:
    return Path(root) / workload / optimizer


def confirm_dir(root, workload: str, optimizer: str) -> Path:
    return Path(root) / workload / f"{optimizer}{CONFIRM_SUFFIX}"


def defaults_dir(root, workload: str) -> Path:
    return Path(root) / workload / DEFAULTS


def is_benchmark(path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(root) -> dict:
    return json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8"))


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
    manifest = read_manifest(root)
    runset = load_runs([root])
    runs = runset.runs.copy()
    parts = runs["sweep"].str.split("/", n=1)
    runs["workload"] = parts.str[0]
    leaf = parts.str[-1]
    runs["role"] = np.where(leaf == DEFAULTS, "defaults",
                            np.where(leaf.str.endswith(CONFIRM_SUFFIX), "confirmed", "trial"))
    return Benchmark(root, manifest, runs, runset)


def comparison(bench: Benchmark, role: str) -> RunSet:
    """The runs of ``role`` as one comparison per workload (sweep = workload, setting =
    optimizer), ready for ``tables.setting_table`` and ``stats.compare_to_best``."""
    runs = bench.of(role).copy()
    runs["sweep"], runs["setting"] = runs["workload"], runs["optimizer"].astype(str)
    metrics = bench.runset.metrics
    metrics = metrics[metrics["run"].isin(runs["run"])]
    return RunSet(runs=runs.reset_index(drop=True), metrics=metrics,
                  swept={w: ["optimizer"] for w in dict.fromkeys(runs["workload"])})


def trials_table(bench: Benchmark) -> pd.DataFrame:
    """One row per study trial that gave a value (completed or diverged; pruned and failed trials
    have none): workload, optimizer, trial (its number), value (the study's objective), lr."""
    trials = bench.of("trial")
    trials = trials[trials["status"].isin(FINAL) & trials["job"].str.isdigit()]
    return pd.DataFrame({
        "workload": trials["workload"], "optimizer": trials["optimizer"].astype(str),
        "trial": trials["job"].astype(int), "value": trials["objective"].astype(float),
        "lr": pd.to_numeric(trials.get("optimizer.lr"), errors="coerce"),
        "status": trials["status"]}).sort_values(["workload", "optimizer", "trial"])


def objective_of(bench: Benchmark) -> str:
    """The metric the studies optimised (one for the whole benchmark)."""
    names = bench.of("trial")["objective_name"].dropna()
    return str(names.iloc[0]) if len(names) else "val_acc1"


def times_to_target(bench: Benchmark) -> pd.DataFrame:
    """Per workload x optimizer: the confirmation runs' median epochs and seconds until the
    workload's target is reached on validation (inf: never, or no confirmation run)."""
    confirmed = bench.of("confirmed")
    confirmed = confirmed[confirmed["status"].isin(AVERAGED)]
    metrics = bench.runset.metrics
    rows = []
    for workload, spec in bench.manifest["workloads"].items():
        metric, target = spec["target_metric"], float(spec["target"])
        for optimizer in bench.optimizers:
            mine = confirmed[(confirmed["workload"] == workload)
                             & (confirmed["optimizer"] == optimizer)]
            epochs, seconds = [], []
            for run in mine["run"]:
                curve = metrics[metrics["run"] == run].pivot_table(
                    index="epoch", columns="metric", values="value").sort_index()
                if metric not in curve.columns:
                    continue
                spent = curve.get("epoch_seconds", pd.Series(math.nan, index=curve.index))
                e, s = run_time_to_target(curve[metric].tolist(), spent.tolist(), target, metric)
                epochs.append(e)
                seconds.append(s)
            rows.append({"workload": workload, "optimizer": optimizer, "metric": metric,
                         "target": target, "runs": len(epochs), "epochs": median_time(epochs),
                         "seconds": median_time(seconds)})
    return pd.DataFrame(rows, columns=["workload", "optimizer", "metric", "target", "runs",
                                       "epochs", "seconds"])


def defaults_trials(bench: Benchmark) -> pd.DataFrame:
    """One row per study: workload, optimizer, trial (the number of the trial that ran the
    optimizer's defaults; None where none did) and left_out ({key: why} of the defaults its space
    could not hold, which that trial drew instead), as the sweeper wrote them
    (``optimization_results.yaml``, ``defaults``; no file: the study has not ended)."""
    rows = []
    for workload in bench.workloads:
        for optimizer in bench.optimizers:
            path = study_dir(bench.root, workload, optimizer) / OPTIMIZATION_RESULTS_FILE
            if not path.is_file():
                continue
            with path.open(encoding="utf-8") as f:
                first = (yaml.safe_load(f) or {}).get("defaults") or {}
            rows.append({"workload": workload, "optimizer": optimizer,
                         "trial": first.get("trial"), "left_out": first.get("left_out") or {}})
    return pd.DataFrame(rows, columns=["workload", "optimizer", "trial", "left_out"])
