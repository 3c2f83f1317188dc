"""``python -m optsweep``: a thin ``@hydra.main`` over ``optsweep.train.train``.

Examples::

    python -m optsweep data=digits model.weights=null trainer.epochs=3
    python -m optsweep -m optimizer=adam optimizer.weight_decay=0,1e-4,1e-3
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from optsweep.config import conf_dir, register_configs
from optsweep.errors import OptsweepError
from optsweep.sweep.job import sweep_job
from optsweep.train import train

log = logging.getLogger("optsweep")
register_configs()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="config")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return sweep_job(cfg, hydra_cfg)  # records a failure and returns a finite value: never raises
    try:
        return train(cfg, hydra_cfg.runtime.output_dir,
                     choices=dict(hydra_cfg.runtime.choices)).objective
    except OptsweepError as exc:
        print(f"optsweep: error: {exc}", file=sys.stderr)
        sys.exit(2)


def cli() -> None:
    # A scheduler's SIGTERM becomes KeyboardInterrupt, so the run records itself as interrupted.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        main()
    except KeyboardInterrupt:
        print("optsweep: interrupted; run the same command again to resume (finished runs are "
              "skipped, unfinished ones continue from their last epoch)", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    cli()
