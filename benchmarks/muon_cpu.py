"""Muon's Newton-Schulz step in bfloat16 (torch.optim.Muon's) against the same iteration in float32.

torch.optim.Muon casts each update to bfloat16 before orthogonalising it; a CPU without bfloat16
matrix instructions (no ``avx512_bf16``/``amx_bf16``) runs those products far slower than float32
ones. For each filter matrix shape (out, in x 3 x 3), this times one ``torch.optim.Muon.step()``
on one parameter of that shape (the bfloat16 iteration plus its few element-wise ops) and the
float32 iteration of the same polynomial alone (written here only to time it), and prints their
ratio. The shapes: a small conv net's hidden layers (16-64 channels) and ResNet18's largest.

Hardware, time and evidence: benchmarks/RESULTS.md, "Muon on a CPU without bfloat16" (2-core
AMD EPYC without bf16, one thread: about 5 minutes at load average 12, most of it ResNet18's
bfloat16 steps).

    python benchmarks/muon_cpu.py [--threads 1] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from optsweep.optim.muon import BF16_MATRIX_FLAGS, CPUINFO, cpu_flags  # noqa: E402

# (label, out channels, in channels): the filters of 3x3 convolutions, as Muon sees them
SHAPES = [("small net 16->32", 32, 16), ("small net 32->64", 64, 32), ("small net 64->64", 64, 64),
          ("ResNet18 layer4 512->512", 512, 512)]
COEFFICIENTS = (3.4445, -4.775, 2.0315)  # torch.optim.Muon's defaults (Keller Jordan's quintic)
STEPS = 5


def float32_newton_schulz(grad: torch.Tensor) -> torch.Tensor:
    """The quintic iteration torch.optim.Muon runs, kept in float32 (for timing only)."""
    a, b, c = COEFFICIENTS
    x = grad.T if grad.size(0) > grad.size(1) else grad
    x = x / x.norm().clamp(min=1e-7)
    for _ in range(STEPS):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if grad.size(0) > grad.size(1) else x


def seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def muon_step(out: int, inp: int):
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(out, inp * 9) * 0.05)
    weight.grad = torch.randn_like(weight)
    optimizer = torch.optim.Muon([weight], lr=0.02, momentum=0.95, nesterov=True)
    return optimizer.step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        info = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        info = ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), "unknown")
    present = sorted(cpu_flags(info) & set(BF16_MATRIX_FLAGS)) or ["none"]
    print(f"cpu={model!r} bf16_matrix_flags={','.join(present)} torch={torch.__version__} "
          f"threads={args.threads} repeats={args.repeats}")
    print(f"{'filter matrix':28s} {'shape':>11s} {'bf16 step s':>12s} {'fp32 NS s':>10s} "
          f"{'bf16/fp32':>9s}")
    for label, out, inp in SHAPES:
        bf16 = seconds(muon_step(out, inp), args.repeats)
        grad = torch.randn(out, inp * 9)
        fp32 = seconds(lambda grad=grad: float32_newton_schulz(grad), args.repeats)
        print(f"{label:28s} {f'{out}x{inp * 9}':>11s} {bf16:12.4f} {fp32:10.4f} "
              f"{bf16 / fp32:9.1f}", flush=True)


if __name__ == "__main__":
    main()
