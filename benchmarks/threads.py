"""Parallel CPU sweeps: N concurrent jobs x T torch threads each, total training images per second.

Compares 1 job x 2 threads against 2 jobs x 1 thread (the two ways to fill a 2-core machine), each
job a separate process training optsweep's own step (``benchmarks.throughput.optsweep_variant``)
on fabricated CIFAR-100-shaped data. Jobs warm up, then all start counting at the same wall-clock
instant and stop after ``--seconds``; layouts alternate (A, B, A, B, ...) and medians are reported.

Hardware, time and evidence: benchmarks/RESULTS.md (2-core Xeon: about 2 minutes with defaults).

    python benchmarks/threads.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

LAYOUTS = ((1, 2), (2, 1))  # (jobs, threads per job)
START_DELAY_S = 25.0  # enough for every worker to import torch, build its run and warm up


def worker(threads: int, start_at: float, seconds: float) -> None:
    import torch

    torch.set_num_threads(threads)
    from benchmarks.throughput import Sizes, fabricate, optsweep_variant

    sizes = Sizes(128, 1, 128, 128, 1, 2048)
    x, y = fabricate(sizes.train_images, seed=0)
    variant = optsweep_variant(x, y, sizes, torch.device("cpu"), "fp32", False)
    variant.train()  # warm-up: first-step allocations and oneDNN primitive creation
    time.sleep(max(0.0, start_at - time.time()))
    images, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        images += variant.train()
    print(json.dumps({"images_per_s": images / (time.perf_counter() - begin),
                      "late_s": max(0.0, begin - start_at)}))


def run_layout(jobs: int, threads: int, seconds: float) -> float:
    start_at = time.time() + START_DELAY_S
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(threads), str(start_at),
                               str(seconds)], stdout=subprocess.PIPE, text=True)
             for _ in range(jobs)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    late = max(r["late_s"] for r in results)
    if late > 1.0:
        print(f"warning: a worker started counting {late:.1f}s late", file=sys.stderr)
    return sum(r["images_per_s"] for r in results)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0, help="counting window per run")
    args = parser.parse_args(argv)
    totals = {layout: [] for layout in LAYOUTS}
    for _ in range(args.repeats):
        for jobs, threads in LAYOUTS:
            totals[jobs, threads].append(run_layout(jobs, threads, args.seconds))
    print(f"{'jobs x threads':<15} {'total train img/s (median)':>27} {'runs':>20}")
    for (jobs, threads), rates in totals.items():
        runs = " ".join(f"{r:.0f}" for r in rates)
        print(f"{jobs} x {threads:<11} {statistics.median(rates):27.1f} {runs:>20}")
    medians = {f"{j}x{t}": statistics.median(r) for (j, t), r in totals.items()}
    print(f"ratio: 2x1_vs_1x2={medians['2x1'] / medians['1x2']:.2f}")
    return medians


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
        worker(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
    else:
        main(sys.argv[1:])
