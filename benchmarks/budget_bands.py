"""Coverage of the budget curves' band, measured where the truth is known.

    python benchmarks/budget_bands.py            # ~1 minute on 2 cores
    python benchmarks/budget_bands.py --quick    # a tenth of the studies

A budget curve's value at k is the expected best of k trials (``optsweep.analysis.budget``,
Tang et al.'s unbiased estimate from the N trials that ran) and its band a jackknife 95% interval.
Here the trials are independent draws, as random search draws them, from two distributions whose
expected best of k is computed from a pool of 200,000 draws (Tang's estimate on the pool, exact up
to the pool's own noise): a standard normal, and the simulated workload's final validation accuracy
of Adam at settings drawn uniformly from its search space (``conf/space/adam.yaml``; a diverged
trial at chance, as the curves count it). For each N, many studies of N trials are drawn, and the
share whose band holds the truth at each k is printed beside the share of a percentile bootstrap
band (1,000 resamples) for comparison. The curves draw the band for k <= N / BAND_SHARE only:
the script prints the smallest coverage there and beyond.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from scipy import special

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optsweep.analysis.budget import BAND_SHARE, band_limit, jackknife_band  # noqa: E402
from optsweep.simulate import model  # noqa: E402
from optsweep.sweep.search_space import parse  # noqa: E402

SIZES = (10, 20, 40, 80)
POOL = 200_000
STUDIES = 600
BOOTSTRAP = 1000
SEED_OF_THE_STUDY = 1  # every trial of a study shares its seed (its effect is the same for all)


def tang_weights(n: int, k: int) -> np.ndarray:
    """The weights of the sorted values in Tang's estimate, in floats through log-gamma
    (N large)."""
    i = np.arange(k, n + 1)
    log_w = (special.gammaln(i) - special.gammaln(k) - special.gammaln(i - k + 1)
             - (special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)))
    return np.concatenate([np.zeros(k - 1), np.exp(log_w)])


def normal(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.normal(size=size)


class SimulatedAdam:
    """Adam's final validation accuracy on the simulated workload at random settings of its
    space."""

    def __init__(self) -> None:
        self.sim = OmegaConf.to_container(
            OmegaConf.load(ROOT / "conf/workload/simulated.yaml")["simulate"])
        self.model = model.OptimizerModel.of(self.sim, "adam")
        self.space, _ = parse(OmegaConf.to_container(
            OmegaConf.load(ROOT / "conf/space/adam.yaml")), None, [])
        defaults = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/optimizer/adam.yaml"))
        self.defaults = {k: v for k, v in defaults.items() if not k.startswith("_")}
        self.effect, self.jitter = model.seed_effects(self.sim, "adam", SEED_OF_THE_STUDY)

    def draw_setting(self, rng: np.random.Generator) -> dict:
        setting = dict(self.defaults)
        for name, dist in self.space.items():
            key = name.split(".", 1)[1]
            if hasattr(dist, "choices"):
                setting[key] = dist.choices[rng.integers(len(dist.choices))]
            elif dist.log:
                setting[key] = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
            else:
                setting[key] = rng.uniform(dist.low, dist.high)
        return setting

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        out = np.empty(size)
        base, n = model.chance(self.sim), int(self.sim["val_size"])
        for j in range(size):
            setting = self.draw_setting(rng)
            margin = model.final_margin(self.sim, self.model, setting) + self.effect
            diverged = model.divergence_epoch(model.overshoot(self.model, setting) + self.jitter,
                                              10) is not None
            p = min(max(base + margin, 0.0), 1.0)
            out[j] = base if diverged else rng.binomial(n, p) / n
        return out


def coverage(draw, rng: np.random.Generator, n: int, studies: int) -> tuple[list, list]:
    pool = np.sort(draw(rng, POOL))
    truth = [float(tang_weights(POOL, k) @ pool) for k in range(1, n)]
    jack, boot = np.zeros(n - 1), np.zeros(n - 1)
    weights = np.array([tang_weights(n, k) for k in range(1, n)])
    for _ in range(studies):
        values = draw(rng, n)
        resampled = np.sort(rng.choice(values, (BOOTSTRAP, n)), axis=1) @ weights.T
        low, high = np.percentile(resampled, [2.5, 97.5], axis=0)
        for k in range(1, n):
            band = jackknife_band(values, k)
            jack[k - 1] += band[0] <= truth[k - 1] <= band[1]
            boot[k - 1] += low[k - 1] <= truth[k - 1] <= high[k - 1]
    return (jack / studies).tolist(), (boot / studies).tolist()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the studies")
    args = parser.parse_args(argv)
    studies = STUDIES // 10 if args.quick else STUDIES
    print(f"coverage of the nominal 95% band of the expected best of k trials, {studies} studies "
          f"per cell; drawn for k <= N/{BAND_SHARE}")
    rng = np.random.default_rng(0)
    for name, draw in (("normal", normal), ("simulated adam", SimulatedAdam())):
        for n in SIZES:
            jack, boot = coverage(draw, rng, n, studies)
            shown = band_limit(n)
            print(f"{name}, N={n}: jackknife k=1..{n - 1}: " + " ".join(f"{c:.2f}" for c in jack))
            print(f"{name}, N={n}: bootstrap k=1..{n - 1}: " + " ".join(f"{c:.2f}" for c in boot))
            print(f"{name}, N={n}: drawn (k <= {shown}): jackknife at least "
                  f"{min(jack[:shown]):.2f}, bootstrap {min(boot[:shown]):.2f}; beyond: "
                  f"jackknife down to {min(jack[shown:] or [math.nan]):.2f}, at k = N/2 "
                  f"{jack[n // 2 - 1]:.2f} (bootstrap {boot[n // 2 - 1]:.2f})", flush=True)


if __name__ == "__main__":
    main()
