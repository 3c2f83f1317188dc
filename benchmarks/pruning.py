"""Does pruning pay? An Optuna lr search with pruning against the full lr grid, on digits (offline).

Both train Adam on scikit-learn's digits from scratch (ResNet18, 20% of the training images held out
for validation) for the same number of epochs per finished run. The grid tries N learning rates
log-spaced over [1e-5, 1e-1]; the search (``sweep=lr_search``: seeded TPE over the same interval)
runs N trials, as many configurations as the grid, and a pruner stops the unpromising ones early.
Epochs are counted from every job's metrics.csv (what was actually trained); the best value is the
final-epoch val_acc1 of a run that trained every epoch. Target: the search's best within 1 point
of the grid's best, with at most a third of the grid's epochs.

    python benchmarks/pruning.py                   # ~10-20 min on a 2-core CPU
    python benchmarks/pruning.py --epochs 3 --points 3 --out multirun/bench_smoke   # a smoke test

Both sweeps are named directories under --out: rerunning resumes them; delete --out to start over.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=9, help="epochs of a run that is not pruned")
    parser.add_argument("--points", type=int, default=9, help="grid points = search trials")
    parser.add_argument("--pruner", default="successive_halving",
                        help="hydra/sweeper/pruner=NAME (optsweep.sweep.optuna_config.PRUNERS)")
    parser.add_argument("--out", type=Path, default=Path("multirun/bench_pruning"))
    parser.add_argument("overrides", nargs="*", help="more overrides for both sweeps")
    return parser.parse_args()


def optsweep(*overrides: str) -> int:
    return subprocess.run([sys.executable, "-m", "optsweep", "-m", *overrides]).returncode


def runs(sweep_dir: Path) -> list[dict]:
    """Per job: status, objective and the epochs it actually trained."""
    found = []
    for summary_path in sorted(sweep_dir.glob("*/summary.json")):
        summary = json.loads(summary_path.read_text())
        metrics = summary_path.parent / "metrics.csv"
        epochs = len(list(csv.DictReader(metrics.open()))) if metrics.exists() else 0
        found.append({"status": summary["status"], "objective": summary["objective"],
                      "epochs": epochs})
    return found


def best(found: list[dict]) -> float:
    finished = [r["objective"] for r in found if r["status"] in ("completed", "diverged")]
    return max(finished, default=float("nan"))


def main() -> None:
    args = parse_args()
    common = ["data=digits", "model.weights=null", "data.val_fraction=0.2", "optimizer=adam",
              f"trainer.epochs={args.epochs}", "trainer.progress=false", *args.overrides]
    lrs = ",".join(f"{lr:.3g}" for lr in np.logspace(-5, -1, args.points))
    optsweep(*common, f"optimizer.lr={lrs}", f"hydra.sweep.dir={args.out / 'grid'}")
    # the measured run's successive halving: cuts at epochs 1, 3, 9 (Optuna's defaults are
    # min_resource=auto, reduction_factor=4)
    halving = ["hydra.sweeper.pruner.min_resource=1", "hydra.sweeper.pruner.reduction_factor=3"] \
        if args.pruner == "successive_halving" else []
    optsweep("sweep=lr_search", *common, f"hydra.sweeper.n_trials={args.points}",
             f"hydra/sweeper/pruner={args.pruner}", *halving,
             f"hydra.sweep.dir={args.out / 'search'}")
    grid, search = runs(args.out / "grid"), runs(args.out / "search")
    result = {
        "grid_best": best(grid), "search_best": best(search),
        "grid_epochs": sum(r["epochs"] for r in grid),
        "search_epochs": sum(r["epochs"] for r in search),
        "search_pruned": sum(r["status"] == "pruned" for r in search),
        "points": args.points, "epochs": args.epochs, "pruner": args.pruner,
    }
    result["epoch_ratio"] = result["search_epochs"] / max(1, result["grid_epochs"])
    result["meets_target"] = bool(result["search_best"] >= result["grid_best"] - 0.01
                                  and result["epoch_ratio"] <= 1 / 3)
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print("pruning: " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in result.items()))


if __name__ == "__main__":
    main()
