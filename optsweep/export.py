"""``python -m optsweep.export tensorboard|mlflow PATH... [KEY=VALUE...]``: finished runs into a
tracker without training them again.

Each run directory under PATH is read from disk (``optsweep.contract``: summary.json, metrics.csv,
.hydra/config.yaml) and replayed through the same tracker class that logs live runs, so an exported
run looks like one logged while it trained. Exporting again adds nothing: a run the tracker holds
already (the MLflow run tagged with its run directory and config fingerprint, TensorBoard event
files in the directory) is left alone. KEY=VALUE are overrides of the tracker's settings, as for
``python -m optsweep``: ``logger.mlflow.tracking_uri=http://HOST:5000``.

    python -m optsweep.export mlflow multirun/quickstart
    python -m optsweep.export tensorboard multirun/lr_search multirun/optimizers
"""

from __future__ import annotations

import argparse
import sys

from hydra import compose, initialize_config_dir

from optsweep import contract, tracking
from optsweep.analysis.load import AnalysisInputError, find_run_dirs
from optsweep.conf_tree import CONFIG_NAME, conf_dir
from optsweep.config import register_configs
from optsweep.errors import OptsweepError
from optsweep.rundir import RunDir

EXPORTERS = ("tensorboard", "mlflow")


def tracker_settings(name: str, overrides: list[str]):
    """The tracker's settings as conf/logger/<name>.yaml writes them, with ``overrides``."""
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=conf_dir()):
        cfg = compose(config_name=CONFIG_NAME, overrides=[f"logger={name}", *overrides])
        return cfg.logger[name]


def run_info(record: RunDir, summary: dict) -> tracking.RunInfo:
    return tracking.run_info(record.read_config(), record.path, summary.get("choices") or {},
                             summary.get("config_fingerprint") or "", record.metrics())


def export(name: str, paths: list[str], overrides: list[str]) -> dict:
    """Export every finished run under ``paths``; returns how many were exported, how many the
    tracker held already, and how many were skipped (unfinished, or without .hydra/config.yaml)."""
    tracking.require([name])
    settings = tracker_settings(name, overrides)
    counts = {"exported": 0, "already there": 0, "skipped": 0}
    for run_dir in find_run_dirs(paths):
        record = RunDir(run_dir)
        summary = record.summary()
        try:
            if contract.status_of(summary) == contract.Status.UNFINISHED:
                raise ValueError(f"unfinished: no {contract.SUMMARY_FILE}")
            info = run_info(record, summary)
        except (OSError, ValueError) as exc:
            print(f"{run_dir}: skipped ({exc})", file=sys.stderr)
            counts["skipped"] += 1
            continue
        tracker = tracking.tracker_class(name)(settings)
        if tracker.recorded(info):
            counts["already there"] += 1
            continue
        tracker.start(info)
        tracker.end(summary)
        counts["exported"] += 1
        print(f"{run_dir}: exported to {name}", flush=True)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optsweep.export", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tracker", choices=EXPORTERS)
    parser.add_argument("paths", nargs="+", metavar="PATH_OR_KEY=VALUE",
                        help="sweep or run directories, and overrides of the tracker's settings")
    args = parser.parse_args(argv)
    overrides = [p for p in args.paths if "=" in p]
    paths = [p for p in args.paths if "=" not in p]
    try:
        counts = export(args.tracker, paths, overrides)
    except (OptsweepError, AnalysisInputError) as exc:
        print(f"optsweep: error: {exc}", file=sys.stderr)
        return 2
    print(", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
