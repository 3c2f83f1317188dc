"""Experiment trackers: the run directory stays the record; TensorBoard, MLflow and W&B get a copy.

``logger=[tensorboard,mlflow]`` (conf/logger/) selects them. Each tracker is one module with one
class that answers three calls, ``start(info)``, ``epoch(row)`` and ``end(summary)``; training
makes them through ``Trackers`` and ``python -m optsweep.export`` replays finished runs through the
same classes. A tracker's module, and so its library, is imported only when it is selected.

A tracker is never in the way: a missing package is a one-line error before training
(``require``), and a tracker that fails during a run warns once and is off for the rest of it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

from omegaconf import DictConfig, OmegaConf

from optsweep import contract
from optsweep.errors import OptsweepError
from optsweep.rundir import RunDir, flatten

log = logging.getLogger(__name__)

# logger name -> (module with its Tracker class, the package it imports, the pyproject extra)
TRACKERS = {
    "tensorboard": ("optsweep.tracking.tensorboard", "tensorboard", "tensorboard"),
    "mlflow": ("optsweep.tracking.mlflow", "mlflow", "mlflow"),
    "wandb": ("optsweep.tracking.wandb", "wandb", "wandb"),
}
# Hydra group choices that become tags, under the tag's name.
TAGGED_CHOICES = {"optimizer": "optimizer", "data": "dataset", "model": "model"}


class TrackerMissing(OptsweepError):
    pass


@dataclass(frozen=True)
class RunInfo:
    """What every tracker is told about a run at its start, live or exported."""

    run_dir: Path
    sweep: str  # the sweep's name: an MLflow experiment, a W&B group
    name: str  # the job's name within its sweep's folder: "quickstart/0"
    params: dict  # the flattened config: "optimizer.lr" -> 0.001
    tags: dict  # sweep, optimizer, dataset, model, seed, run_dir, config_fingerprint
    rows: Sequence[Mapping] = field(default_factory=tuple)  # epochs already finished (resume)


class Tracker(Protocol):
    """``start``: the run begins, or resumes with ``info.rows`` finished, which the tracker then
    holds exactly once; ``epoch``: one new row of metrics.csv; ``end``: summary.json's content."""

    def __init__(self, settings: Mapping[str, Any]) -> None: ...

    def start(self, info: RunInfo) -> None: ...

    def epoch(self, row: Mapping) -> None: ...

    def end(self, summary: Mapping) -> None: ...

    def recorded(self, info: RunInfo) -> bool:
        """For export: True when the tracker holds this finished run already."""


def selected(cfg: Mapping) -> list[str]:
    """The logger names in ``cfg`` (a DictConfig or the plain dict of ``.hydra/config.yaml``)."""
    return list((cfg.get("logger") or {}).keys())


def require(names: Sequence[str]) -> None:
    """Raise TrackerMissing for the first selected tracker whose package is not installed."""
    for name in names:
        _, package, extra = TRACKERS[name]
        if importlib.util.find_spec(package) is None:
            raise TrackerMissing(f"logger={name} needs the {package} package: "
                                 f"pip install -e '.[{extra}]'")


def tracker_class(name: str) -> type:
    module, _, _ = TRACKERS[name]
    return importlib.import_module(module).Tracker


# --- what a run is, for a tracker -----------------------------------------------------------------


def params_of(config: Mapping) -> dict:
    """A config as tracker parameters: ``rundir.flatten``'s keys and values, with None as the text
    ``null`` (trackers keep strings and numbers; YAML spells a missing value null)."""
    return {key: "null" if value is None else value for key, value in flatten(config).items()}


def run_info(config: Mapping, run_dir: Path, choices: Mapping, fingerprint: str,
             rows: Sequence[Mapping] = ()) -> RunInfo:
    """``config``: the resolved config as a plain dict; ``choices``: Hydra's group choices."""
    run_dir = Path(run_dir).resolve()
    sweep = choices.get("sweep") or run_dir.parent.name
    # the betas that ran: a tracker compares runs by these, as the analysis does
    params = params_of(contract.with_betas_that_ran({k: v for k, v in config.items()
                                                     if k != "logger"}))
    tags = {tag: str(choices.get(group)) for group, tag in TAGGED_CHOICES.items()}
    tags.update(sweep=sweep, seed=str(config["trainer"]["seed"]), run_dir=str(run_dir),
                config_fingerprint=fingerprint)
    return RunInfo(run_dir, sweep, f"{run_dir.parent.name}/{run_dir.name}", params, tags,
                   tuple(rows))


def metrics_of(row: Mapping) -> dict:
    """A metrics.csv row as tracker metrics: every measured column but the epoch (the step)."""
    return {k: float(row[k]) for k in contract.METRIC_COLUMNS[1:]
            if row.get(k) is not None and row.get(k) != "" and math.isfinite(float(row[k]))}


def end_facts(summary: Mapping) -> dict:
    """What a tracker records at the end: status, objective and best epoch (None: no best)."""
    best = summary.get("best") or {}
    return {"status": str(summary["status"]), "objective": summary.get("objective"),
            "objective_name": summary.get("objective_name"), "best_epoch": best.get("epoch"),
            "epochs_completed": summary.get("epochs_completed")}


# --- state kept in the run directory --------------------------------------------------------------


def read_state(run_dir: Path, tracker: str) -> dict:
    """What ``tracker`` recorded about this run directory (its run id), or {}."""
    return RunDir(run_dir).tracking().get(tracker) or {}


def write_state(run_dir: Path, tracker: str, state: Mapping) -> None:
    record = RunDir(run_dir)
    record.write_tracking({**record.tracking(), tracker: dict(state)})


# --- the trackers of one run ----------------------------------------------------------------------


def guarded(name: str, what: str, call: Callable[[], Any]) -> bool:
    """Run ``call``; on any error warn in one line and return False (a tracker's failure is
    never the run's)."""
    try:
        call()
        return True
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        log.warning("optsweep: warning: logger=%s failed in %s (%s: %s); it is off for the rest "
                    "of this run, whose directory stays complete", name, what,
                    type(exc).__name__, first_line)
        return False


class Trackers:
    """The selected trackers of a run, each switched off at its first failure. Empty: no-ops."""

    def __init__(self, trackers: Optional[dict] = None) -> None:
        self.active = dict(trackers or {})

    def _call(self, method: str, *args: Any) -> None:
        for name, tracker in list(self.active.items()):
            if not guarded(name, method, lambda tracker=tracker: getattr(tracker, method)(*args)):
                del self.active[name]

    def start(self, info: RunInfo) -> "Trackers":
        self._call("start", info)
        return self

    def epoch(self, row: Mapping) -> None:
        self._call("epoch", row)

    def end(self, summary: Mapping) -> None:
        self._call("end", summary)
        self.active.clear()


def start(cfg: DictConfig, run_dir: Path, choices: Mapping, rows: Sequence[Mapping]) -> Trackers:
    """The selected trackers of ``cfg``, started on a run whose finished epochs are ``rows``."""
    names = selected(cfg)
    if not names:
        return Trackers()
    trackers = {}
    for name in names:
        settings = cfg.logger[name]
        guarded(name, "set-up",
                lambda name=name, settings=settings: trackers.__setitem__(
                    name, tracker_class(name)(settings)))
    config = OmegaConf.to_container(cfg, resolve=True)
    info = run_info(config, run_dir, choices, contract.config_fingerprint(cfg), rows)
    return Trackers(trackers).start(info)
