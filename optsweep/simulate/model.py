"""The simulated workload's model: a setting's expected accuracy, its curve, its noise and its
truth.

Pure functions of the ``simulate`` config (conf/workload/simulated.yaml states every formula and
key), torch-free and file-free, so that the simulated task (``optsweep.simulate.task``) writes run
directories from them and ``benchmarks/calibration.py`` simulates thousands of studies in process
with the very same numbers. The numbers are invented to exercise a protocol, not measurements.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np

# keys of an optimizer's config that scale its effective lr (conf/workload/simulated.yaml)
MOMENTUM_KEY = "momentum"  # heavy-ball momentum: lr / (1 - momentum)
SCALE_KEY = "d_coef"  # Prodigy's and D-Adaptation's multiplier of their step-size estimate
WEIGHT_DECAY_KEY = "weight_decay"
TOP_K = 5
TRAIN_GAP = 0.05  # train minus validation accuracy at the last epoch (the fit)
LOG2 = math.log(2.0)


@dataclass(frozen=True)
class OptimizerModel:
    """One optimizer's invented numbers (``simulate.optimizers.<name>``)."""

    peak: float
    lr: float
    width: float
    diverge_lr: float
    test_gap: float
    speed: float
    step_cost: float

    @classmethod
    def of(cls, sim: Mapping, optimizer: str) -> "OptimizerModel":
        spec = sim["optimizers"][optimizer]
        return cls(**{name: float(spec[name]) for name in cls.__dataclass_fields__})


def chance(sim: Mapping) -> float:
    return 1.0 / int(sim["classes"])


def effective_lr(setting: Mapping[str, Any]) -> float:
    """The lr a setting takes effect with: lr x d_coef / (1 - momentum), each where it exists."""
    lr = float(setting["lr"]) * float(setting.get(SCALE_KEY, 1.0) or 1.0)
    momentum = setting.get(MOMENTUM_KEY)
    if isinstance(momentum, (int, float)) and not isinstance(momentum, bool):
        lr /= max(1.0 - float(momentum), 1e-6)
    return lr


def final_margin(sim: Mapping, model: OptimizerModel, setting: Mapping[str, Any]) -> float:
    """The setting's expected final validation accuracy over chance, noise-free."""
    peak_margin = model.peak - chance(sim)
    distance = math.log10(effective_lr(setting) / model.lr) / model.width
    margin = peak_margin * 2.0 ** -(distance ** 2)
    decay = setting.get(WEIGHT_DECAY_KEY)
    if isinstance(decay, (int, float)) and decay > 0:
        margin += float(sim["weight_decay_gain"]) * 2.0 ** -(
            math.log10(float(decay) / float(sim["weight_decay_best"])) ** 2)
    return min(margin, 1.0 - chance(sim))


def progress(epoch: float, epochs: int, speed: float) -> float:
    """The curve's share of its final margin after ``epoch`` of ``epochs`` (1 at the last)."""
    return (1.0 - 2.0 ** (-epoch / speed)) / (1.0 - 2.0 ** (-epochs / speed))


def overshoot(model: OptimizerModel, setting: Mapping[str, Any]) -> float:
    """Decades of effective lr above the divergence edge (negative: below it), noise-free."""
    return math.log10(effective_lr(setting) / model.diverge_lr)


def divergence_epoch(excess: float, epochs: int) -> Optional[int]:
    """The epoch a run ``excess`` decades above the edge diverges in (None: it does not)."""
    if excess <= 0:
        return None
    return max(1, math.ceil(epochs * (1.0 - excess)))


def diverge_probability(sim: Mapping, model: OptimizerModel, setting: Mapping[str, Any]) -> float:
    """P(a seed's jitter takes the run over the edge): Phi(overshoot / diverge_sd)."""
    d, sd = overshoot(model, setting), float(sim["diverge_sd"])
    if sd == 0:
        return 1.0 if d > 0 else 0.0
    return 0.5 * math.erfc(-d / (sd * math.sqrt(2.0)))


def top5(acc1: float, sim: Mapping) -> float:
    classes = int(sim["classes"])
    return acc1 + (1.0 - acc1) * (min(TOP_K, classes) - 1) / (classes - 1)


def loss(acc1: float, sim: Mapping) -> float:
    share = min(max((acc1 - chance(sim)) / (1.0 - chance(sim)), 0.0), 1.0)
    return math.log(int(sim["classes"])) * (1.0 - share)


def epochs_to(target: float, margin: float, base: float, epochs: int, speed: float) -> float:
    """The first whole epoch at which base + margin x progress reaches ``target`` (inf: never)."""
    for epoch in range(1, epochs + 1):
        if base + margin * progress(epoch, epochs, speed) >= target - 1e-12:
            return float(epoch)
    return math.inf


def truth(sim: Mapping, optimizer: str, setting: Mapping[str, Any], epochs: int,
          target: float, target_metric: str) -> dict:
    """The setting's noise-free expectations, written beside each run so that any answer can be
    checked: final val and test accuracy (a diverging seed counted at chance), P(divergence), and
    epochs and seconds to the workload's target on ``target_metric`` (val or test top-1)."""
    model = OptimizerModel.of(sim, optimizer)
    margin, base = final_margin(sim, model, setting), chance(sim)
    p = diverge_probability(sim, model, setting)
    val = min(base + margin, 1.0)
    test = min(max(val + model.test_gap, 0.0), 1.0)
    gap = model.test_gap if target_metric.startswith("test") else 0.0
    reach = epochs_to(target, margin + gap, base, epochs, model.speed) if p < 0.5 else math.inf
    return {"val_acc1": (1 - p) * val + p * base, "test_acc1": (1 - p) * test + p * base,
            "diverge_probability": p, "epochs_to_target": reach,
            "seconds_to_target": reach * model.step_cost}


def stable_hash(text: str) -> int:
    """The same number for the same text in every process (``hash`` is salted per process)."""
    return zlib.crc32(text.encode())


def seed_effects(sim: Mapping, optimizer: str, seed: int) -> tuple[float, float]:
    """(the seed's effect shared by every optimizer, this optimizer's with this seed), in accuracy,
    and the seed's divergence jitter in decades."""
    shared = np.random.default_rng([int(seed), 0]).normal(0.0, float(sim["seed_shared_sd"]))
    own = np.random.default_rng([int(seed), 1, stable_hash(optimizer)])
    effect, jitter = own.normal(0.0, [float(sim["seed_sd"]), float(sim["diverge_sd"])])
    return float(shared) + float(effect), float(jitter)


def run_rows(sim: Mapping, optimizer: str, setting: Mapping[str, Any], seed: int, epochs: int,
             noise_key: str) -> tuple[list[dict], Optional[int]]:
    """(one metrics row per epoch before any divergence, the epoch it diverged in or None).

    ``noise_key`` names the run (its config fingerprint): its evaluation noise is its own, and the
    same on every rerun of it. Rows hold every metric column but the time columns."""
    model = OptimizerModel.of(sim, optimizer)
    base = chance(sim)
    effect, jitter = seed_effects(sim, optimizer, seed)
    margin = final_margin(sim, model, setting) + effect
    stop = divergence_epoch(overshoot(model, setting) + jitter, epochs)
    rng = np.random.default_rng(stable_hash(noise_key))
    rows = []
    for epoch in range(1, (stop or epochs + 1)):
        share = progress(epoch, epochs, model.speed)
        val_p = _clip(base + margin * share)
        test_p = _clip(val_p + model.test_gap * share)
        train_p = _clip(base + (margin + TRAIN_GAP) * share)
        val = rng.binomial(int(sim["val_size"]), val_p) / int(sim["val_size"])
        test = rng.binomial(int(sim["test_size"]), test_p) / int(sim["test_size"])
        rows.append({"epoch": epoch, "train_loss": loss(train_p, sim), "train_acc1": train_p,
                     "val_loss": loss(val, sim), "val_acc1": val, "val_acc5": top5(val, sim),
                     "test_loss": loss(test, sim), "test_acc1": test,
                     "test_acc5": top5(test, sim), "lr": float(setting["lr"]),
                     "lr_last": float(setting["lr"])})
    return rows, stop


def _clip(p: float) -> float:
    return min(max(p, 0.0), 1.0)
