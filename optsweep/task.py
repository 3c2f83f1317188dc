"""What every task shares: training (``optsweep.train``) and its simulated stand-in
(``optsweep.simulate.task``) take the same epoch hook (a sweep's pruner), stop the same way, hold
the same lease and log an epoch the same way. ``optsweep.dispatch`` picks one of them. Torch-free.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Mapping

from omegaconf import DictConfig, OmegaConf

from optsweep import contract
from optsweep.config import SIMULATE_KEY
from optsweep.contract import Outcome, Status
from optsweep.lease import RunLease

log = logging.getLogger("optsweep.train")

EpochHook = Callable[[int, dict], None]


class StopRun(Exception):
    """Raised by an epoch hook to end a run early with ``status`` (a pruned sweep trial)."""

    def __init__(self, status: Status, message: str = "") -> None:
        super().__init__(message or str(status))
        self.status = Status(status)


def is_simulated(cfg: Mapping) -> bool:
    """Whether ``cfg`` (a DictConfig or a run's plain config) is the simulated workload's."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.select(cfg, SIMULATE_KEY, default=None) is not None
    return cfg.get(SIMULATE_KEY) is not None


def leased(cfg: DictConfig, run_dir: str | Path, body: Callable[[], Outcome]) -> Outcome:
    """``body()`` while this process holds the run's lease; a run directory that another live
    process is running (``optsweep.lease``) is left alone: UNFINISHED, with who holds it."""
    with RunLease(run_dir) as lease:
        if lease.holder is not None:
            held = (f"running elsewhere: {lease.holder.get('owner')} renewed its lease "
                    f"{time.time() - float(lease.holder.get('renewed', 0)):.0f} s ago")
            log.warning("%s: %s; not trained here", run_dir, held)
            name = contract.objective_name(cfg)
            return Outcome(Status.UNFINISHED, contract.worst_value(name), name, 0, held)
        return body()


def log_epoch(row: Mapping, epochs: int) -> None:
    """The one-line log of a finished epoch (optsweep.log)."""
    parts = [f"epoch {row['epoch']}/{epochs}"]
    parts += [f"{k}={row[k]:.4f}" for k in contract.LOGGED_COLUMNS if row.get(k) is not None]
    parts += [f"{row['epoch_seconds']:.1f}s", f"{row['train_images_per_s']:.0f} img/s"]
    log.info(" ".join(parts))
