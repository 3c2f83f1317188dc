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
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from optsweep.conf_tree import CONFIG_NAME, conf_dir
from optsweep.config import register_configs
from optsweep.errors import OptsweepError
from optsweep.overrides import override_key

log = logging.getLogger("optsweep")
register_configs()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def task(cfg: DictConfig) -> float:
    """The task of every run and sweep job (``main`` is it under ``@hydra.main``; the benchmark's
    one pool runs it as its sweeps' task)."""
    # here, not at the top: training imports torch (seconds), which a sweep's own process never
    # needs, and the simulated task none (optsweep.dispatch picks one)
    from optsweep.dispatch import run_task
    from optsweep.sweep.job import sweep_job

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        # records a failure and returns a finite value: never raises
        return sweep_job(cfg, hydra_cfg)
    try:
        return run_task(cfg, hydra_cfg.runtime.output_dir,
                        choices=dict(hydra_cfg.runtime.choices)).objective
    except OptsweepError as exc:
        print(f"optsweep: error: {exc}", file=sys.stderr)
        sys.exit(2)


main = hydra.main(version_base="1.3", config_path=conf_dir(), config_name=CONFIG_NAME)(task)


def check_overrides(args: list[str]) -> None:
    """Exit with status 2 and one line naming an override that Hydra's grammar rejects (Hydra's
    own message names neither the argument nor its key: ``mismatched input '<EOF>' ...``)."""
    parser = OverridesParser.create()
    options_with_values = ("-sc", "--shell-completion")
    for before, arg in zip(["", *args], args):
        if arg.startswith("-") or "=" not in arg or before in options_with_values:
            continue
        try:
            parser.parse_overrides([arg])
        except HydraException as exc:
            key = override_key(arg)
            if arg.endswith(","):
                reason = "nothing follows its last comma: list a sweep's values as " \
                         f"{key}=1e-3,1e-2, with no comma at the end"
            else:
                reason = "; ".join(line for line in str(exc).splitlines()
                                   if not line.startswith(("See ", "Error parsing")))
                reason += f"; quote a value with spaces or ()[]{{}},= in it: '{key}=\"...\"'"
            print(f"optsweep: error: cannot parse the override {arg!r} of {key}: {reason} "
                  "(grammar: https://hydra.cc/docs/advanced/override_grammar/basic/)",
                  file=sys.stderr)
            sys.exit(2)


def cli() -> None:
    # A scheduler's SIGTERM becomes KeyboardInterrupt, so the run records itself as interrupted.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    check_overrides(sys.argv[1:])
    try:
        main()
    except KeyboardInterrupt:
        print("optsweep: interrupted; run the same command again to resume (finished runs are "
              "skipped, unfinished ones continue from their last epoch)", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    cli()
