"""Do slots pay? The same pruned Optuna search with batches and with slots, then the 12-trial
``sweep=lr_search`` with slots, on optsweep's own training (digits, offline, ``n_jobs=2`` under
``hydra/launcher=joblib``).

A: both schedules run the same trials: the random sampler, seeded per trial, draws the same lrs,
and a threshold pruner on val_acc1 (a fixed rule: a trial below ``--lower`` after an epoch stops)
prunes the same ones, about half, after their first epoch or two; trials that run on train
``--epochs`` (8) epochs. Printed per schedule: wall time (start-up included), the slot-time spent
training (each run's ``wall_seconds``), the idle fraction of 2 x wall; for slots also the sweeper's
own slot-time with the final drain (nothing left to start) taken out. Targets: slots >= 1.2x faster
than batches, slots idle below 5% of slot-time not counting the final drain.

B: ``sweep=lr_search`` (TPE, median pruner), 12 trials of 4 epochs, with slots: target, training
>= 90% of 2 x wall time, start-up included. Printed two ways: the runs' own time
(``wall_seconds``) alone, and with the final drain's idle slot-seconds whose cores the trials still
running had (``hydra.sweeper.lend_cores``, on by default: ``slot_time.lent_slot_s``).

    python benchmarks/sweep_slots.py            # ~10 min on a quiet 2-core CPU
    python benchmarks/sweep_slots.py --trials 4 --epochs 2 --search-trials 4   # a smoke test
    python benchmarks/sweep_slots.py --search-trials 0 data.train_limit=600   # A only, smaller
    python benchmarks/sweep_slots.py --trials 0                               # B only

Each sweep runs as its own ``python -m optsweep`` (Hydra's state is per process), fresh: its
directory under ``--out`` is deleted first. The machine's load (``uptime``) is printed before and
after: numbers taken under load are not comparable.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
from omegaconf import OmegaConf

SLOTS = 2
COMMON = ["data=digits", "model.weights=null", "trainer.progress=false", "hydra/launcher=joblib",
          f"hydra.launcher.n_jobs={SLOTS}", f"hydra.sweeper.n_jobs={SLOTS}",
          "hydra.sweeper.max_failure_rate=1.0"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=12,
                        help="trials of the pruned search (A; 0: no A)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of a trial not pruned (A)")
    parser.add_argument("--lower", type=float, default=0.5,
                        help="A's threshold pruner: val_acc1 below this after an epoch stops")
    parser.add_argument("--search-trials", type=int, default=12, help="trials of lr_search (B)")
    parser.add_argument("--out", type=Path, default=Path("multirun/bench_slots"))
    parser.add_argument("overrides", nargs="*",
                        help="more overrides for every sweep (e.g. data.train_limit=600)")
    return parser.parse_args()


def sweep(out: Path, *overrides: str) -> dict:
    """Run one sweep fresh in ``out``; its wall time and what its runs trained."""
    shutil.rmtree(out, ignore_errors=True)
    start, started_at = time.perf_counter(), time.time()
    # lr_search keeps its study in the sweep directory: deleting it starts the study afresh
    result = subprocess.run([sys.executable, "-m", "optsweep", "-m", *COMMON, *overrides,
                             f"hydra.sweep.dir={out}"], capture_output=True, text=True)
    wall, ended_at = time.perf_counter() - start, time.time()
    if result.returncode != 0:
        sys.exit(f"the sweep in {out} failed:\n{result.stderr[-3000:]}")
    summaries = [json.loads(p.read_text()) for p in sorted(out.glob("*/summary.json"))]
    results = OmegaConf.to_container(OmegaConf.load(out / "optimization_results.yaml"))
    trials = optuna.load_study(study_name=results["study_name"],
                               storage=f"sqlite:///{out / 'optuna.db'}").get_trials()
    first = min(t.datetime_start for t in trials).timestamp()
    last = max(t.datetime_complete for t in trials).timestamp()
    return {"wall_s": wall, "train_s": sum(s.get("wall_seconds") or 0.0 for s in summaries),
            "statuses": sorted(s["status"] for s in summaries), "results": results,
            "before_first_s": first - started_at, "after_last_s": ended_at - last}


def describe(name: str, run: dict) -> str:
    idle = 1 - run["train_s"] / (SLOTS * run["wall_s"])
    pruned = run["statuses"].count("pruned")
    line = (f"{name:<8} wall {run['wall_s']:6.1f} s  training {run['train_s']:6.1f} slot-s  "
            f"idle {100 * idle:5.1f}% of {SLOTS} x wall  ({len(run['statuses'])} runs, "
            f"{pruned} pruned)")
    slot_time = run["results"].get("slot_time")
    if slot_time:
        total = slot_time["slots"] * slot_time["wall_s"]
        idle_before_drain = slot_time["idle_slot_s"] - slot_time["drain_idle_slot_s"]
        sweeper_idle = slot_time["idle_slot_s"] / total
        line += (f"\n{'':<8} sweeper's slot-time: idle {100 * sweeper_idle:.1f}%, "
                 f"{100 * idle_before_drain / total:.1f}% not counting the final drain "
                 f"({slot_time['drain_idle_slot_s']:.1f} slot-s, "
                 f"{slot_time.get('lent_slot_s', 0.0):.1f} of them lent to running trials)")
    line += (f"\n{'':<8} start-up {run['before_first_s']:.1f} s (the command's start to the first "
             f"trial's), end {run['after_last_s']:.1f} s (the last trial's end to the command's)")
    return line


def main() -> None:
    args = parse_args()
    say_load("before:")
    if args.trials:
        part_a(args)
    if args.search_trials:
        part_b(args)
    say_load("after: ")


def part_a(args: argparse.Namespace) -> None:
    search = ["sweep=lr_search", f"trainer.epochs={args.epochs}",
              f"hydra.sweeper.n_trials={args.trials}", "hydra/sweeper/sampler=random",
              "hydra.sweeper.sampler.seed=0", "hydra/sweeper/pruner=threshold",
              f"hydra.sweeper.pruner.lower={args.lower}"]
    runs = {schedule: sweep(args.out / schedule, *search, *args.overrides,
                            f"hydra.sweeper.schedule={schedule}")
            for schedule in ("batches", "slots")}
    same = runs["batches"]["statuses"] == runs["slots"]["statuses"]
    print(f"A: {args.trials} trials of {args.epochs} epochs, threshold pruner val_acc1 < "
          f"{args.lower}; same outcomes in both: {same}")
    for schedule, run in runs.items():
        print(describe(schedule, run))
    print(f"A: slots are {runs['batches']['wall_s'] / runs['slots']['wall_s']:.2f}x faster than "
          "batches (target >= 1.2x)")


def part_b(args: argparse.Namespace) -> None:
    lr_search = sweep(args.out / "lr_search", "sweep=lr_search", "trainer.epochs=4",
                      f"hydra.sweeper.n_trials={args.search_trials}", *args.overrides)
    print(f"B: sweep=lr_search, {args.search_trials} trials of 4 epochs, median pruner, slots")
    print(describe("slots", lr_search))
    slot_s = SLOTS * lr_search["wall_s"]
    lent = (lr_search["results"].get("slot_time") or {}).get("lent_slot_s", 0.0)
    print(f"B: training {100 * lr_search['train_s'] / slot_s:.1f}% of {SLOTS} x wall time by the "
          f"runs' own time; {100 * (lr_search['train_s'] + lent) / slot_s:.1f}% with the "
          f"{lent:.1f} slot-s whose cores the drain lent to the last trials (target >= 90%)")


def say_load(when: str) -> None:
    print(f"load {when}", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
