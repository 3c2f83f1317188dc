"""Training and evaluation throughput of ResNet18 on CIFAR-100-shaped data (32x32, 100 classes).

Three pipelines, timed in one process on the same fabricated images (only the seed pipeline
decodes them per item):

  seed     the original study's: a torchvision-style Dataset over uint8 HWC arrays, per image
           PIL -> ToTensor -> Normalize, DataLoader(batch_size=128, shuffle=True, num_workers=0),
           NCHW model, default Adam, eval under model.eval() + no_grad at batch 128; always fp32
  plain    a hand-written loop on normalised NCHW float tensors already in memory, default memory
           format, default Adam, eval under no_grad at data.eval_batch_size; same precision as
           optsweep
  optsweep optsweep.train.build_run + train_one_epoch + evaluate: the code `python -m optsweep` runs

Timing windows of the three are interleaved (one training step each on CPU, then one evaluation
window each, order rotated every round) so that a noisy, shared machine slows all of them alike; the
table shows medians over rounds. The last line, ``ratios: train_vs_seed=X eval_vs_seed=Y
train_vs_plain=Z``, is optsweep's images/s over the other's: the median over rounds of the ratio of
the two windows of the same round (the ratio of the medians is printed above it).

Hardware, time and evidence: see benchmarks/RESULTS.md (2-core Xeon, AVX-512, torch 2.14.1 CPU:
``--quick`` about 50 s idle, 2-3.5 min under load). ``--tiny`` shrinks everything so that a test
runs it in seconds.

    python benchmarks/throughput.py --quick
    python benchmarks/throughput.py --device cuda --precision bf16 --compile
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from hydra import compose, initialize_config_dir
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from optsweep.conf_tree import conf_dir
from optsweep.config import register_configs
from optsweep.data import Split
from optsweep.runtime import autocast
from optsweep.train import build_run, evaluate, train_one_epoch

# the seed study's transforms.Normalize: ImageNet statistics (conf/data/*.yaml for optsweep's)
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
NUM_CLASSES = 100
SEED_BATCH = 128  # the study's DataLoader batch size, for training and evaluation
VARIANTS = ("seed", "plain", "optsweep")


@dataclass
class Sizes:
    """How much work one timing window does and how many windows each variant gets."""

    batch_size: int
    train_steps: int  # optimizer steps per training window
    eval_images: int  # images per evaluation window
    eval_batch_size: int
    rounds: int  # timed windows per variant
    train_images: int  # distinct fabricated training images (windows cycle through them)
    warmup: bool = True  # one untimed window first (allocations, oneDNN primitives, compile)


# Short windows, many rounds: on a shared machine the load changes over seconds, so a window of one
# step per variant, repeated, pairs the variants under the same load far better than long windows.
SIZES = {
    ("full", "cpu"): Sizes(128, 2, 2000, 1000, 25, 4096),
    ("quick", "cpu"): Sizes(128, 1, 1000, 1000, 15, 2048),
    ("tiny", "cpu"): Sizes(8, 1, 16, 16, 1, 32, warmup=False),
    # a GPU step is milliseconds: windows of 20 steps keep the per-window sync negligible
    ("full", "cuda"): Sizes(128, 40, 10000, 1000, 15, 16384),
    ("quick", "cuda"): Sizes(128, 20, 5000, 1000, 7, 8192),
    ("tiny", "cuda"): Sizes(8, 1, 16, 16, 1, 32, warmup=False),
}


def fabricate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images in CIFAR's in-memory layout (N x 32 x 32 x 3) and labels."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, NUM_CLASSES, size=n, dtype=np.int64))


class SeedDataset(Dataset):
    """What ``torchvision.datasets.CIFAR100`` does per item, over arrays instead of its files
    (its constructor insists on the official files and their MD5s)."""

    def __init__(self, data: np.ndarray, targets: np.ndarray, transform) -> None:
        self.data, self.targets, self.transform = data, targets.tolist(), transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        img, target = Image.fromarray(self.data[index]), self.targets[index]
        return self.transform(img), target


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a window's time is the work's, not the queueing's."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float:
    """Peak memory: the GPU's allocated peak on cuda, else the process's peak RSS (Linux: KiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


@dataclass
class Variant:
    """One pipeline: ``train()`` runs one training window, ``eval()`` one evaluation window;
    each returns the number of images it processed."""

    name: str
    train: Callable[[], int]
    eval: Callable[[], int]
    train_rates: list = field(default_factory=list)
    eval_rates: list = field(default_factory=list)
    peak: float = 0.0


def seed_variant(x: np.ndarray, y: np.ndarray, sizes: Sizes, device: torch.device) -> Variant:
    tf = transforms.Compose([transforms.ToTensor(),
                             transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    dataset = SeedDataset(x, y, tf)
    train_loader = DataLoader(dataset, batch_size=SEED_BATCH if sizes.batch_size == 128 else
                              sizes.batch_size, shuffle=True, num_workers=0)
    eval_loader = DataLoader(dataset, batch_size=min(SEED_BATCH, sizes.eval_images), shuffle=False)
    model = torchvision.models.resnet18(num_classes=NUM_CLASSES).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = _cycle(train_loader)

    def train() -> int:
        model.train()
        seen = 0
        for _ in range(sizes.train_steps):
            images, labels = next(batches)
            images, labels = images.to(device), labels.to(device)
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()  # the study's loop logged a running loss every step
            seen += len(labels)
        return seen

    @torch.no_grad()
    def evaluate_() -> int:
        model.eval()
        seen = 0
        for images, labels in eval_loader:
            model(images.to(device)).argmax(1).eq(labels.to(device)).sum().item()
            seen += len(labels)
            if seen >= sizes.eval_images:
                break
        return seen

    return Variant("seed", train, evaluate_)


def plain_variant(x: np.ndarray, y: np.ndarray, sizes: Sizes, device: torch.device,
                  precision: str) -> Variant:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    images = ((torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - mean) / std).contiguous()
    images, labels = images.to(device), torch.from_numpy(y).to(device)
    model = torchvision.models.resnet18(num_classes=NUM_CLASSES).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    state = {"order": torch.randperm(len(labels), generator=generator), "at": 0}

    def next_batch() -> torch.Tensor:
        if state["at"] + sizes.batch_size > len(labels):
            state.update(order=torch.randperm(len(labels), generator=generator), at=0)
        idx = state["order"][state["at"]:state["at"] + sizes.batch_size].to(device)
        state["at"] += sizes.batch_size
        return idx

    def train() -> int:
        model.train()
        for _ in range(sizes.train_steps):
            idx = next_batch()
            with autocast(device, precision):
                loss = F.cross_entropy(model(images[idx]).float(), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()
        return sizes.train_steps * sizes.batch_size

    @torch.no_grad()
    def evaluate_() -> int:
        model.eval()
        for start in range(0, sizes.eval_images, sizes.eval_batch_size):
            stop = min(start + sizes.eval_batch_size, sizes.eval_images)
            with autocast(device, precision):
                model(images[start:stop]).argmax(1).eq(labels[start:stop]).sum().item()
        return sizes.eval_images

    return Variant("plain", train, evaluate_)


def optsweep_cfg(sizes: Sizes, device: torch.device, precision: str, compile_: bool):
    """The real config tree, as ``python -m optsweep`` composes it, with the benchmark's sizes."""
    register_configs()
    overrides = ["model.weights=null", f"trainer.device={device}", f"trainer.precision={precision}",
                 f"trainer.compile={str(compile_).lower()}", f"data.batch_size={sizes.batch_size}",
                 f"data.eval_batch_size={sizes.eval_batch_size}", "trainer.progress=false"]
    with initialize_config_dir(version_base="1.3", config_dir=conf_dir()):
        return compose(config_name="config", overrides=overrides)


def optsweep_variant(x: np.ndarray, y: np.ndarray, sizes: Sizes, device: torch.device,
                     precision: str, compile_: bool) -> Variant:
    cfg = optsweep_cfg(sizes, device, precision, compile_)
    run = build_run(cfg, device, NUM_CLASSES)
    images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    data = Split(images, torch.from_numpy(y)).to(device)
    per_window = sizes.train_steps * sizes.batch_size
    windows = [Split(data.images[s:s + per_window], data.labels[s:s + per_window])
               for s in range(0, len(data) - per_window + 1, per_window)]
    eval_split = Split(data.images[:sizes.eval_images], data.labels[:sizes.eval_images])
    state = {"window": 0}

    def train() -> int:
        split = windows[state["window"] % len(windows)]
        state["window"] += 1
        train_one_epoch(run, split, epoch=state["window"])  # ends with a host sync (its metrics)
        return len(split)

    def evaluate_() -> int:
        evaluate(run, eval_split, "test")
        return len(eval_split)

    return Variant("optsweep", train, evaluate_)


def _cycle(loader: DataLoader):
    while True:
        yield from loader


def timed(fn: Callable[[], int], device: torch.device) -> float:
    """Images per second of one window."""
    sync(device)
    start = time.perf_counter()
    images = fn()
    sync(device)
    return images / (time.perf_counter() - start)


def measure(variants: list[Variant], sizes: Sizes, device: torch.device) -> None:
    """One untimed warm-up window each (unless ``--tiny``), then ``sizes.rounds`` rounds: the
    training windows of all variants back to back, then their evaluation windows, in an order
    rotated every round so that no variant always runs first (or right after another's)."""
    for v in variants if sizes.warmup else ():
        v.train(), v.eval()
    for r in range(sizes.rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            reset_peak(device)
            v.train_rates.append(timed(v.train, device))
            v.peak = max(v.peak, peak_mib(device))
        for v in order:
            reset_peak(device)
            v.eval_rates.append(timed(v.eval, device))
            v.peak = max(v.peak, peak_mib(device))


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """Median over rounds of the ratio of two windows run seconds apart: a load that drifts over
    the run (other jobs on a shared machine) cancels within a round, not across the medians."""
    return statistics.median(a / b for a, b in zip(ours, theirs))


def report(variants: list[Variant], device: torch.device, args) -> dict:
    v = {x.name: x for x in variants}
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"precision={args.precision} compile={args.compile} mode={args.mode} "
          f"rounds={len(variants[0].train_rates)}")
    memory = "peak GPU MiB" if device.type == "cuda" else "peak RSS MiB (process)"
    print(f"{'variant':<9} {'train img/s':>12} {'(min..max)':>16} {'eval img/s':>11} "
          f"{'(min..max)':>16} {memory:>22}")
    for name in VARIANTS:
        print(f"{name:<9} {statistics.median(v[name].train_rates):12.1f} "
              f"{_span(v[name].train_rates):>16} {statistics.median(v[name].eval_rates):11.1f} "
              f"{_span(v[name].eval_rates):>16} {v[name].peak:22.0f}")
    med = {n: (statistics.median(v[n].train_rates), statistics.median(v[n].eval_rates)) for n in v}
    print(f"ratio of medians: train_vs_seed={med['optsweep'][0] / med['seed'][0]:.2f} "
          f"eval_vs_seed={med['optsweep'][1] / med['seed'][1]:.2f} "
          f"train_vs_plain={med['optsweep'][0] / med['plain'][0]:.2f}")
    ratios = {"train_vs_seed": paired_ratio(v["optsweep"].train_rates, v["seed"].train_rates),
              "eval_vs_seed": paired_ratio(v["optsweep"].eval_rates, v["seed"].eval_rates),
              "train_vs_plain": paired_ratio(v["optsweep"].train_rates, v["plain"].train_rates)}
    print("ratios: " + " ".join(f"{k}={x:.2f}" for k, x in ratios.items()))
    return ratios


def _span(rates: list[float]) -> str:
    return f"{min(rates):.0f}..{max(rates):.0f}"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="fewer, shorter windows: under 2 minutes on a 2-core CPU")
    mode.add_argument("--tiny", dest="mode", action="store_const", const="tiny",
                      help="a few seconds, numbers meaningless: keeps the script from rotting")
    parser.set_defaults(mode="full")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                        help="optsweep's and plain's; seed stays fp32 as in the study")
    parser.add_argument("--compile", action="store_true", help="trainer.compile=true for optsweep")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sizes = SIZES[args.mode, "cuda" if device.type == "cuda" else "cpu"]
    x, y = fabricate(sizes.train_images, seed=0)
    variants = []
    for name in VARIANTS:
        torch.manual_seed(0)  # same initial weights in every variant
        if name == "seed":
            variants.append(seed_variant(x, y, sizes, device))
        elif name == "plain":
            variants.append(plain_variant(x, y, sizes, device, args.precision))
        else:
            variants.append(optsweep_variant(x, y, sizes, device, args.precision, args.compile))
    measure(variants, sizes, device)
    return report(variants, device, args)


if __name__ == "__main__":
    main(sys.argv[1:])
