"""What a run is to the entry point and to a sweep job: training, or the simulated stand-in.

``run_task`` picks the task from the config before anything heavy is imported: a config with a
``simulate`` block (``workload=simulated``) runs ``optsweep.simulate.task`` (torch-free,
milliseconds), every other one ``optsweep.train`` (torch). Both write the same run directory
(``optsweep.contract``), take the same epoch hook (a sweep's pruner) and return an ``Outcome``, so
the sweeps, the Optuna sweeper, ``confirm``, the benchmark and the analysis need not know which ran.
Torch-free.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from omegaconf import DictConfig

from optsweep.contract import Outcome
from optsweep.task import EpochHook, is_simulated


def run_task(cfg: DictConfig, run_dir: str | Path, *, on_epoch: Optional[EpochHook] = None,
             choices: Optional[Mapping[str, Any]] = None) -> Outcome:
    """Run ``cfg`` into ``run_dir``: ``optsweep.simulate.task.simulate`` or
    ``optsweep.train.train`` (same arguments, same contract, same errors)."""
    if is_simulated(cfg):
        from optsweep.simulate.task import simulate

        return simulate(cfg, run_dir, on_epoch=on_epoch, choices=choices)
    from optsweep.train import train

    return train(cfg, run_dir, on_epoch=on_epoch, choices=choices)
