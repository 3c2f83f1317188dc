"""The simulated task: a run of ``workload=simulated``, written as training writes one.

``simulate(cfg, run_dir, on_epoch=..., choices=...)`` is ``optsweep.train.train`` for the
simulated workload: the same checks first (``config.validate``, then the simulated model's own),
the same lease, ``metrics.csv`` rewritten after every epoch, the same epoch hook (a sweep's
pruner), the same statuses (completed, early_stopped, diverged, pruned, interrupted, failed) and a
``summary.json`` that also holds the setting's ``truth`` (``optsweep.simulate.model.truth``) and
``simulated: true``. A rerun of a finished run is skipped; an unfinished one is recomputed (its
numbers are the same) without sleeping again through the epochs it had finished.
"""
from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Any, Mapping, Optional

from omegaconf import DictConfig, OmegaConf

from optsweep import contract
from optsweep.config import SIMULATE_KEY, validate
from optsweep.contract import Outcome, Status
from optsweep.errors import ConfigError, OptsweepError
from optsweep.rundir import RunDir
from optsweep.simulate import model
from optsweep.task import EpochHook, StopRun, leased, log_epoch

log = logging.getLogger(__name__)


class SimulatedCrash(RuntimeError):
    """A run attempt that ``simulate.crash_rate`` made fail: a crash, not the optimizer's fault."""


def simulate(cfg: DictConfig, run_dir: str | Path, *, on_epoch: Optional[EpochHook] = None,
             choices: Optional[Mapping[str, Any]] = None) -> Outcome:
    """Run ``cfg`` (``workload=simulated``) into ``run_dir``; see the module's docstring."""
    return leased(cfg, run_dir,
                  lambda: _simulate(cfg, Path(run_dir), on_epoch, dict(choices or {})))


def optimizer_name(cfg: DictConfig, choices: Mapping[str, Any]) -> str:
    """The optimizer option the run names (Hydra's group choice), whose model it follows."""
    name = choices.get("optimizer")
    if not name:
        raise ConfigError("optimizer", None, "an optimizer=NAME choice",
                          "the simulated task follows simulate.optimizers.NAME")
    return str(name)


def check(cfg: DictConfig, optimizer: str) -> None:
    """Raise ConfigError naming the first key the simulated task cannot run with."""
    validate(cfg)
    sim = cfg[SIMULATE_KEY]
    known = sorted(sim.optimizers)
    if optimizer not in sim.optimizers:
        raise ConfigError("optimizer", optimizer,
                          f"one of {', '.join(known)} (simulate.optimizers)",
                          f"give it a model: an entry simulate.optimizers.{optimizer} (peak, lr, "
                          "width, diverge_lr, test_gap, speed, step_cost) in a copy of "
                          "conf/workload/simulated.yaml in a hydra.searchpath folder")
    if "lr" not in cfg.optimizer:
        raise ConfigError("optimizer", optimizer, "an optimizer with an lr key")
    _check_model(sim, optimizer)
    if cfg.get("logger"):
        raise ConfigError("logger", list(cfg.logger), "none with workload=simulated",
                          "the simulated task logs to no tracker")
    if cfg.scheduler.get("_target_") is not None:
        raise ConfigError("scheduler", cfg.scheduler._target_, "none with workload=simulated",
                          "the simulated model has a constant lr")


def _check_model(sim: DictConfig, optimizer: str) -> None:
    def need(ok: bool, key: str, value: Any, expected: str) -> None:
        if not ok:
            raise ConfigError(f"simulate.{key}", value, expected)

    need(sim.classes >= 2, "classes", sim.classes, "an integer >= 2")
    for key in ("seed_shared_sd", "seed_sd", "diverge_sd", "weight_decay_gain", "epoch_seconds"):
        need(sim[key] >= 0, key, sim[key], "a number >= 0")
    for key in ("val_size", "test_size", "train_size"):
        need(sim[key] >= 1, key, sim[key], "an integer >= 1 (examples)")
    need(sim.weight_decay_best > 0, "weight_decay_best", sim.weight_decay_best, "a number > 0")
    need(0 <= sim.crash_rate <= 1, "crash_rate", sim.crash_rate, "a share in [0, 1]")
    spec = sim.optimizers[optimizer]
    chance = 1.0 / sim.classes
    need(chance < spec.peak <= 1, f"optimizers.{optimizer}.peak", spec.peak,
         f"an accuracy in ({chance:g}, 1]: above chance (1 / simulate.classes)")
    for key in ("lr", "width", "diverge_lr", "speed", "step_cost"):
        need(spec[key] > 0, f"optimizers.{optimizer}.{key}", spec[key], "a number > 0")


def _simulate(cfg: DictConfig, run_dir: Path, on_epoch: Optional[EpochHook],
              choices: dict) -> Outcome:
    run_dir.mkdir(parents=True, exist_ok=True)
    record = RunDir(run_dir)
    facts: dict[str, Any] = {"choices": choices, contract.SIMULATED_FIELD: True}
    try:
        optimizer = optimizer_name(cfg, choices)
        check(cfg, optimizer)
    except OptsweepError as exc:
        record.write_failed_summary(str(exc), cfg, **facts)
        raise
    name = contract.objective_name(cfg)
    facts.update(config_fingerprint=contract.config_fingerprint(cfg),
                 epochs_planned=cfg.trainer.epochs)
    previous = record.summary()
    if cfg.trainer.resume and contract.status_of(previous) in contract.FINAL \
            and previous.get("config_fingerprint") == facts["config_fingerprint"]:
        log.info("%s: already %s with this config; not run again", run_dir, previous["status"])
        return Outcome.from_summary(previous)
    sim = OmegaConf.to_container(cfg[SIMULATE_KEY], resolve=True)
    facts[contract.CLASSES_FIELD] = int(sim["classes"])  # a diverged run's chance, in the analysis
    setting = OmegaConf.to_container(cfg.optimizer, resolve=True)
    epochs = int(cfg.trainer.epochs)
    facts[contract.TRUTH_FIELD] = model.truth(sim, optimizer, setting, epochs,
                                              float(cfg.workload.target),
                                              str(cfg.workload.target_metric))
    planned, diverges = model.run_rows(sim, optimizer, setting, int(cfg.trainer.seed), epochs,
                                       facts["config_fingerprint"])
    finished = {row["epoch"]: row.get("val_acc1") for row in record.metrics()}
    attempt = random.Random()  # seeded afresh: a crash is drawn per attempt, not per setting
    crash = attempt.randint(1, epochs) if attempt.random() < sim["crash_rate"] else None
    step_cost = model.OptimizerModel.of(sim, optimizer).step_cost
    # an epoch of train_size examples in batches of data.batch_size, one pass a step; evaluation
    # is not simulated (no time)
    steps = math.ceil(int(sim["train_size"]) / int(cfg.data.batch_size))
    start, rows = time.perf_counter(), []
    status, error = Status.COMPLETED, None
    try:
        for epoch in range(1, epochs + 1):
            if epoch == crash:
                raise SimulatedCrash(f"simulated crash in epoch {epoch} (simulate.crash_rate="
                                     f"{sim['crash_rate']}); a rerun draws again")
            if epoch == diverges:
                status = Status.DIVERGED
                error = (f"epoch {epoch}: train_loss not finite (simulated: the effective lr "
                         f"{model.effective_lr(setting):.3g} is past diverge_lr for this seed)")
                log.warning("%s: diverged: %s", run_dir, error)
                break
            row = dict(planned[epoch - 1])
            seconds = _spend(sim["epoch_seconds"] * step_cost,
                             again=finished.get(epoch) == row["val_acc1"])
            row.update(epoch_seconds=seconds or step_cost,
                       train_images_per_s=sim["train_size"] / (seconds or step_cost),
                       eval_seconds=0.0, train_steps=steps, train_passes=steps)
            rows.append(row)
            record.write_metrics(rows)
            log_epoch(row, epochs)
            if on_epoch is not None:
                on_epoch(epoch, row)
            if epoch < epochs and contract.stops_early(rows, name,
                                                        cfg.trainer.early_stop_patience):
                status = Status.EARLY_STOPPED
                break
    except StopRun as exc:
        status, error = exc.status, str(exc)
        log.info("%s: stopped early (%s)", run_dir, exc)
    except KeyboardInterrupt:
        _finish(record, Status.INTERRUPTED, "interrupted by the user or the scheduler", name,
                rows, start, facts)
        raise
    except Exception as exc:
        _finish(record, Status.FAILED, f"{type(exc).__name__}: {exc}", name, rows, start, facts)
        raise
    return _finish(record, status, error, name, rows, start, facts)


def _spend(seconds: float, again: bool) -> float:
    """Sleep ``seconds`` (an epoch's simulated cost); not for an epoch an earlier attempt
    finished with the same numbers (it was paid for then). Returns the seconds it stands for."""
    if seconds > 0 and not again:
        time.sleep(seconds)
    return seconds


def _finish(record: RunDir, status: Status, error: Optional[str], name: str, rows: list,
            start: float, facts: dict) -> Outcome:
    content = contract.summary(status, name, rows, error=error, **facts,
                               wall_seconds=time.perf_counter() - start,
                               device=contract.SIMULATED_DEVICE, parameters=0,
                               trainable_parameters=0)
    record.write_summary(content)
    return Outcome(status, content["objective"], name, len(rows), error)
