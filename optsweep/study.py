"""``python -m optsweep.study``: the whole optimizer study, preset after preset, then the analysis.

    python -m optsweep.study                          # every grid of the study on CIFAR-100
    python -m optsweep.study trainer.seed=0,1,2       # ... with three seeds per configuration
    python -m optsweep.study --presets optimizers,lr_grid data=digits model.weights=null
    python -m optsweep.study --dry-run                # print the commands only

Each preset is its own named sweep directory (multirun/<preset>/), so running the study again after
a crash or a reboot skips every finished run and resumes the unfinished one from its last epoch.
A preset with a failed job does not stop the study; the exit status is 1 if any preset failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys

# the study's grids, cheapest and most informative first (lr_search is a search, run it on its own)
STUDY = ("optimizers", "lr_grid", "adam_weight_decay", "adam_betas", "adagrad_lr_decay",
         "adagrad_eps", "rmsprop_momentum", "rmsprop_alpha", "rmsprop_centered")


def commands(presets: tuple[str, ...], overrides: list[str], root: str = "multirun/") -> list:
    runs = [[sys.executable, "-m", "optsweep", "-m", f"sweep={name}", *overrides]
            for name in presets]
    if importlib.util.find_spec("optsweep.analysis") is not None:  # built separately
        runs.append([sys.executable, "-m", "optsweep.analysis", root])
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optsweep.study", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--presets", default=",".join(STUDY),
                        help="comma-separated presets from conf/sweep/ "
                             "(default: the study's grids)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("overrides", nargs="*", help="overrides for every preset, e.g. data=digits")
    args = parser.parse_args(argv)
    failed = []
    for cmd in commands(tuple(filter(None, args.presets.split(","))), args.overrides):
        print("+ " + " ".join(cmd[1:]), flush=True)
        if not args.dry_run and subprocess.run(cmd).returncode != 0:
            failed.append(" ".join(cmd[2:]))
    if failed:
        print("optsweep.study: failed: " + "; ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
