"""Does one pool pay? ``python -m optsweep.benchmark`` with a process per step (``pool=false``: each
study, confirmation and defaults sweep its own ``python -m optsweep -m``, one after another) and
with one pool of slots for everything (``pool=true``), in one run of this script, on the same
machine, one after the other.

Printed per case and mode: the command's wall time (start-up, preflight and report included), the
runs' own time (each run's ``wall_seconds``), their share of slots x wall, the processes started
(the benchmark's, each step's, and their slot workers: for a process per step under joblib,
1 + steps x (1 + slots); for the pool, 1 + the workers it started), and the pool's wall time as a
ratio of the per-step one. Targets (issue "one pool for the whole benchmark"): simulated, 4 slots,
share >= 0.90; demo at 2 slots of 1 thread share >= 0.80, at 1 slot >= 0.85.

Cases (``--cases``, comma-separated):
- ``simulated``: 4 optimizers, budget 12, seeds 3, defaults on, 4 slots (joblib), each epoch a
  sleep of ``--epoch-seconds`` x the optimizer's step cost (10 epochs a run): scheduling measured
  without the CPU deciding it;
- ``demo1``: ``preset=demo`` (real training on digits) at 1 slot (the basic launcher);
- ``demo2``: ``preset=demo`` at 2 slots of 1 thread each (joblib, ``trainer.num_threads=1``);
- ``demo1_long``, ``demo2_long``: the same with 6 epochs a run instead of 2 (``--modes pool``
  skips the per-step baseline);
- ``slurm``: one submitit job per run against the joblib pool's long-lived workers, at 2 slots on
  the single-node SLURM cluster the engine tests start (tests/engines.py; Debian's slurm-wlm and
  munge): each run's cost beyond its own time;
- ``caps``: the in-flight cap's effect on what TPE finds: ``--cap-repeats`` simulated benchmarks
  (adam and sgd, budget 14, 4 slots, a short sleep so that trials overlap) per cap in ``--caps``,
  each with its own sampler seed, printing the mean and lowest noise-free test accuracy of the
  confirmed settings (the simulated truth).

    python benchmarks/benchmark_pool.py                        # all cases, ~40 min on 2 cores
    python benchmarks/benchmark_pool.py --cases simulated --epoch-seconds 0.2   # a smoke test

The machine's load (``uptime``) is printed before and after: numbers taken under load are not
comparable across runs, only within one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's optsweep, and tests.engines for the slurm case

from optsweep import contract  # noqa: E402
from optsweep.rundir import BenchmarkDir  # noqa: E402

SIMULATED = ["workloads=[simulated]", "optimizers=[adam,sgd,lion,soap]", "budget=12", "seeds=3"]
JOBLIB = ["hydra/launcher=joblib"]


def slots_overrides(slots: int) -> list[str]:
    """``slots`` trials at once: the sweeper's slots, and the launcher's for the per-step grids."""
    return [*JOBLIB, f"hydra.launcher.n_jobs={slots}", f"hydra.sweeper.n_jobs={slots}"]


def cases(args: argparse.Namespace) -> dict[str, tuple[int, list[str]]]:
    """{case: (slots, the benchmark's arguments)}."""
    return {
        "simulated": (4, [*SIMULATED, f"simulate.epoch_seconds={args.epoch_seconds}",
                          *slots_overrides(4)]),
        "demo1": (1, ["preset=demo"]),
        "demo2": (2, ["preset=demo", "trainer.num_threads=1", *slots_overrides(2)]),
        # the same with runs three times as long: what is left once the fixed costs weigh less
        "demo1_long": (1, ["preset=demo", "trainer.epochs=6"]),
        "demo2_long": (2, ["preset=demo", "trainer.epochs=6", "trainer.num_threads=1",
                           *slots_overrides(2)]),
    }


def run(out: Path, arguments: list[str]) -> tuple[float, str]:
    """Run the benchmark fresh into ``out``: (wall seconds, its output)."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "optsweep.benchmark", f"dir={out}", *arguments],
                          capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(arguments)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, done.stdout


def runs_seconds(out: Path) -> tuple[int, float]:
    """(runs, the sum of their own wall_seconds)."""
    summaries = [json.loads(p.read_text()) for p in out.rglob(contract.SUMMARY_FILE)]
    return len(summaries), sum(float(s.get("wall_seconds") or 0.0) for s in summaries)


def processes(out: Path, output: str, slots: int, pool: bool, joblib: bool) -> int:
    if pool:
        return 1 + int((BenchmarkDir(out).read_slot_time() or {}).get("worker_starts", 0))
    steps = sum(line.startswith("+ ") for line in output.splitlines())
    return 1 + steps * (1 + (slots if joblib else 0))


def measure(case: str, slots: int, arguments: list[str], root: Path,
            modes: list[str]) -> dict[str, dict]:
    results = {}
    for mode in modes:
        out = root / f"{case}_{mode}"
        wall, output = run(out, [*arguments, f"pool={mode == 'pool'}"])
        n, seconds = runs_seconds(out)
        results[mode] = {"wall_s": wall, "runs": n, "runs_s": seconds,
                         "share": seconds / (slots * wall),
                         "processes": processes(out, output, slots, mode == "pool",
                                                JOBLIB[0] in arguments)}
        print(f"{case:9} {mode:5} slots {slots}: wall {wall:7.1f} s, {n} runs' own time "
              f"{seconds:7.1f} s, share of slots x wall {results[mode]['share']:.3f}, "
              f"{results[mode]['processes']} processes started", flush=True)
    if len(results) == 2:
        ratio = results["pool"]["wall_s"] / results["steps"]["wall_s"]
        print(f"{case:9} pool / steps wall time: {ratio:.3f}", flush=True)
    return results


def truths(out: Path) -> list[float]:
    """The noise-free test accuracy of each study's confirmed setting."""
    values = []
    for path in out.glob(f"*/*{contract.BENCHMARK_CONFIRM_SUFFIX}/0/{contract.SUMMARY_FILE}"):
        values.append(float(json.loads(path.read_text())["truth"]["test_acc1"]))
    return values


def caps(args: argparse.Namespace, root: Path) -> None:
    for cap in args.caps:
        found = []
        for repeat in range(args.cap_repeats):
            out = root / f"cap{cap}_{repeat}"
            run(out, ["workloads=[simulated]", "optimizers=[adam,sgd]", "budget=14", "seeds=2",
                      "defaults_baseline=false", f"in_flight={cap}", "simulate.epoch_seconds=0.05",
                      f"hydra.sweeper.sampler.seed={repeat}", *slots_overrides(4)])
            found += truths(out)
        print(f"caps      in_flight={cap}: confirmed settings' noise-free test_acc1 over "
              f"{len(found)} studies: mean {statistics.mean(found):.4f}, lowest {min(found):.4f}",
              flush=True)


SLURM_NODE = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0",
              "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
              "hydra.launcher.timeout_min=30", "hydra.launcher.partition=debug"]


def slurm(root: Path) -> None:
    from tests.engines import slurm_cluster

    arguments = ["workloads=[simulated]", "optimizers=[adam,sgd]", "space=lr_only", "budget=6",
                 "seeds=2", "simulate.epoch_seconds=0.5", "hydra.sweeper.n_jobs=2"]
    with slurm_cluster() as env:
        for name, launcher in (("joblib", JOBLIB), ("slurm", SLURM_NODE)):
            os.environ.update(env if name == "slurm" else {})
            out = root / f"slurm_{name}"
            wall, _ = run(out, [*arguments, *launcher])
            n, seconds = runs_seconds(out)
            busy = float((BenchmarkDir(out).read_slot_time() or {})["busy_slot_s"])
            print(f"slurm     {name:6} 2 slots: wall {wall:6.1f} s, {n} runs' own time "
                  f"{seconds:6.1f} s, share {seconds / (2 * wall):.3f}, each run's cost beyond "
                  f"its own time {(busy - seconds) / n:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="simulated,demo1,demo2,caps")
    parser.add_argument("--modes", default="steps,pool", help="steps, pool or both")
    parser.add_argument("--epoch-seconds", type=float, default=2.0,
                        help="simulated: seconds slept per epoch (x the step cost)")
    parser.add_argument("--caps", type=lambda s: [int(v) for v in s.split(",")], default=[1, 4])
    parser.add_argument("--cap-repeats", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("multirun/bench_pool"))
    args = parser.parse_args()
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    wanted = args.cases.split(",")
    for case, (slots, arguments) in cases(args).items():
        if case in wanted:
            measure(case, slots, arguments, args.out, args.modes.split(","))
    if "slurm" in wanted:
        slurm(args.out)
    if "caps" in wanted:
        caps(args, args.out)
    print("load after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
