"""A tiny Hydra task for the sweeper's tests: any Hydra app, nothing of optsweep but its sweeper and
``optsweep.sweep.trial``. ``mode`` picks the behaviour under test (see conf/task.yaml)."""

import math
import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from optsweep.sweep.trial import current_trial, report


def custom_space(cfg: DictConfig, trial) -> None:
    """hydra.sweeper.custom_search_space=task.custom_space: y depends on x."""
    trial.suggest_float("y", -1.0, float(trial.params["x"]) if trial.params["x"] > -1 else -0.5)


@hydra.main(version_base="1.3", config_path="conf", config_name="task")
def main(cfg: DictConfig):
    x, y = float(cfg.x), float(cfg.y)
    # which process ran the job (the launcher's worker or the sweeper's own)
    (Path(HydraConfig.get().runtime.output_dir) / "pid").write_text(str(os.getpid()))
    if cfg.mode == "raise":
        raise ValueError(f"boom at x={x:.3f}")
    if cfg.mode == "nonfinite":
        return float("nan")
    if cfg.mode == "pair":  # direction: [minimize, maximize]; reports, which cannot prune there
        report(x * x, 0)
        report(x * x, 1)
        return [x * x, y]
    if cfg.mode == "steps":  # a loss that falls from x*x over the steps; reported after each
        for step in range(cfg.steps):
            report(x * x / (step + 1), step)
        return x * x / cfg.steps
    if cfg.mode == "stall" and current_trial() is not None and current_trial().number == 1 \
            and Path(cfg.stall_file).exists():
        Path(cfg.stall_file).with_suffix(".started").write_text(str(os.getpid()))
        time.sleep(120)  # the test kills the sweep here
    time.sleep(float(cfg.sleep))
    return (x - 1.0) ** 2 + y * y


if __name__ == "__main__":
    main()
