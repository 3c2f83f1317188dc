"""The training loop: ``train(cfg, run_dir)`` trains one configuration and returns its ``Outcome``.

A run writes ``metrics.csv`` after every epoch, ``checkpoint.pt`` while it can still resume and
``summary.json`` at the end, whatever the end was (see ``optsweep.contract`` for the statuses).
Rerun into the same directory, a run that ended with a final status and the same config is not
trained again, and an unfinished one resumes from its last finished epoch. How a run ends, its
checkpoint's clean-up included, is decided in one place: ``_finish``.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from optsweep import contract, tracking
from optsweep.checkpoint import (
    delete_checkpoint,
    load_checkpoint,
    save_best_weights,
    save_checkpoint,
)
from optsweep.config import validate
from optsweep.contract import Outcome, Status
from optsweep.data import Split, Splits, check_name, check_splits, decoded_size, load_splits
from optsweep.data.batches import Normalize, eval_batches, train_batches, trained_count
from optsweep.errors import ConfigError, OptsweepError
from optsweep.inference import inference_forward
from optsweep.metrics import Tally
from optsweep.model import (
    build_model,
    check_model,
    check_weights_available,
    count_parameters,
    has_batch_norm,
)
from optsweep.optim.adapters import Adapter
from optsweep.optim.build import build_adapter
from optsweep.optim.check import check_optimizer
from optsweep.resources import capped_threads, check_memory, device_memory
from optsweep.rundir import RunDir
from optsweep.runtime import (
    autocast,
    grad_scaler,
    resolve_device,
    seed_everything,
    weight_memory_format,
)
from optsweep.schedule import Schedule
from optsweep.small_maps import lower_point_convs
from optsweep.task import EpochHook, StopRun, leased, log_epoch

log = logging.getLogger(__name__)

DIVERGENCE_CHECK_STEPS = 20  # how often the loss is checked for NaN/inf (each check syncs a GPU)


class Diverged(Exception):
    pass


@dataclass
class Run:
    """Everything a run has in memory; what it checkpoints is ``checkpoint_state``."""

    cfg: DictConfig
    run_dir: Optional[Path]  # None for a run built only to be timed (benchmarks)
    device: torch.device
    model: torch.nn.Module
    forward: torch.nn.Module  # the model, or its compiled wrapper
    optimizer: torch.optim.Optimizer
    adapter: Adapter  # the optimizer's protocol: train/eval modes, step, extra metrics
    schedule: Schedule
    scaler: torch.amp.GradScaler
    normalize: Normalize
    generator: torch.Generator
    fingerprint: str
    min_batch: int = 1  # a smaller last training batch is left out of its epoch (batch norm: 2)
    rows: list = field(default_factory=list)
    trackers: tracking.Trackers = field(default_factory=tracking.Trackers)

    def checkpoint_state(self) -> dict:
        return {"fingerprint": self.fingerprint, "rows": self.rows,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
                "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state()}

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state.get("scheduler"))
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.rows = list(state["rows"])


def train(cfg: DictConfig, run_dir: str | Path, *, on_epoch: Optional[EpochHook] = None,
          choices: Optional[Mapping[str, Any]] = None) -> Outcome:
    """Train ``cfg`` writing into ``run_dir`` and return how the run ended.

    ``on_epoch(epoch, row)`` runs after each epoch's files are written (it may raise ``StopRun``);
    ``choices`` are Hydra's group choices (model, data, optimizer, ...), recorded in the summary.
    Raises OptsweepError for bad input and re-raises any other error after recording the run as
    failed (KeyboardInterrupt: interrupted). A run directory that another live process is training
    (its lease, ``optsweep.lease``) is left alone: UNFINISHED, with who holds it as the error.
    """
    return leased(cfg, run_dir, lambda: _train(cfg, Path(run_dir), on_epoch, choices))


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first bad key: the config's own rules (``config.validate``,
    torch-free), then those that need the dataset readers, the model zoo and the optimizer's
    class; before anything is read or built."""
    validate(cfg)
    check_name(cfg.data.name)
    check_model(cfg.model, cfg.data.image_size)
    check_optimizer(cfg)


def _train(cfg: DictConfig, run_dir: Path, on_epoch: Optional[EpochHook],
           choices: Optional[Mapping[str, Any]]) -> Outcome:
    run_dir.mkdir(parents=True, exist_ok=True)
    record = RunDir(run_dir)
    facts = {"choices": dict(choices or {})}
    try:
        check_config(cfg)
        tracking.require(tracking.selected(cfg))
    except OptsweepError as exc:
        record.write_failed_summary(str(exc), cfg, **facts)
        raise
    name = contract.objective_name(cfg)
    facts.update(config_fingerprint=contract.config_fingerprint(cfg),
                 epochs_planned=cfg.trainer.epochs)
    previous = record.summary()
    if cfg.trainer.resume and contract.status_of(previous) in contract.FINAL \
            and previous.get("config_fingerprint") == facts["config_fingerprint"]:
        log.info("%s: already %s with this config; not trained again", run_dir,
                 previous["status"])
        return Outcome.from_summary(previous)
    start = time.perf_counter()
    try:
        run, splits = _prepare(cfg, run_dir, facts["config_fingerprint"])
    except Exception as exc:  # bad input, or a bug: either way the directory says failed
        error = str(exc) if isinstance(exc, OptsweepError) else f"{type(exc).__name__}: {exc}"
        record.write_failed_summary(error, cfg, **facts)
        raise
    facts[contract.CLASSES_FIELD] = splits.num_classes  # a diverged run's chance, in the analysis
    device = run.device
    train_split = splits.train.to(device)
    val_split = splits.val.to(device) if splits.val is not None else None
    test_split = splits.test.to(device)

    status, error = Status.COMPLETED, None
    try:
        _maybe_resume(run)
        run.trackers = tracking.start(cfg, run_dir, facts["choices"], run.rows)
        for epoch in range(len(run.rows) + 1, cfg.trainer.epochs + 1):
            row = _run_epoch(run, epoch, train_split, val_split, test_split)
            run.rows.append(row)
            run.schedule.after_epoch(row)
            record.write_metrics(run.rows)
            if cfg.trainer.keep_best and contract.best_row(run.rows, name) is row:
                save_best_weights(run_dir, run.model.state_dict())
            save_checkpoint(run_dir, run.checkpoint_state())
            log_epoch(row, cfg.trainer.epochs)
            run.trackers.epoch(row)
            if on_epoch is not None:
                on_epoch(epoch, row)
            if epoch < cfg.trainer.epochs and contract.stops_early(
                    run.rows, name, cfg.trainer.early_stop_patience):
                status = Status.EARLY_STOPPED
                log.info("%s: no better %s for %d epochs; stopped after epoch %d", run_dir,
                         contract.best_epoch_metric(name), cfg.trainer.early_stop_patience, epoch)
                break
    except Diverged as exc:
        status, error = Status.DIVERGED, str(exc)
        log.warning("%s: diverged: %s", run_dir, exc)
    except StopRun as exc:
        status, error = exc.status, str(exc)
        log.info("%s: stopped early (%s)", run_dir, exc)
    except KeyboardInterrupt:
        _finish(run, Status.INTERRUPTED, "interrupted by the user or the scheduler", name, start,
                facts)
        raise
    except Exception as exc:
        _finish(run, Status.FAILED, f"{type(exc).__name__}: {exc}", name, start, facts)
        raise
    return _finish(run, status, error, name, start, facts)


def _prepare(cfg: DictConfig, run_dir: Path, fingerprint: str) -> tuple[Run, Splits]:
    """Everything checked, read and built before the first epoch; what is cheap to check first
    (weights, device, memory) is checked before the data is read."""
    check_weights_available(cfg.model)
    device = resolve_device(cfg.trainer.device)
    if cfg.trainer.num_threads:
        torch.set_num_threads(capped_threads(cfg.trainer.num_threads))
    images, side = decoded_size(cfg.data)
    check_memory(cfg.data, images, side, device_memory(device))
    seed_everything(cfg.trainer.seed)
    splits = load_splits(cfg.data, cfg.trainer.seed)
    run = build_run(cfg, device, splits.num_classes, run_dir, fingerprint,
                    steps_per_epoch=math.ceil(len(splits.train) / cfg.data.batch_size))
    if cfg.data.batch_size < run.min_batch:
        raise ConfigError("data.batch_size", cfg.data.batch_size,
                          f"an integer >= {run.min_batch} for {cfg.model.name}",
                          "its batch norm normalises each training batch by the batch's own "
                          "variance, which one image does not have")
    check_splits(splits, cfg.data, run.min_batch)
    left_out = len(splits.train) - trained_count(len(splits.train), cfg.data.batch_size,
                                                 run.min_batch)
    if left_out:
        log.warning("data.batch_size=%d leaves a last training batch of %d image, which batch "
                    "norm cannot train on: each epoch leaves out that image (another one each "
                    "epoch) and trains on %d of %d", cfg.data.batch_size, left_out,
                    len(splits.train) - left_out, len(splits.train))
    return run, splits


def build_run(cfg: DictConfig, device: torch.device, num_classes: int,
              run_dir: Optional[Path] = None, fingerprint: str = "", *,
              steps_per_epoch: int = 1) -> Run:
    """Model, optimizer, lr schedule, scaler and batch pipeline for ``cfg`` on ``device``, before
    any epoch (``steps_per_epoch``: batches per epoch, for schedules that step per batch).

    Public so that benchmarks time ``train_one_epoch``/``evaluate`` on exactly what ``train`` runs.
    """
    memory_format = weight_memory_format(device, cfg.trainer.channels_last)
    model = build_model(cfg.model, num_classes, cfg.data.image_size)
    if cfg.trainer.fast_path:
        lower_point_convs(model)
    min_batch = 2 if has_batch_norm(model) else 1  # before compiling wraps it
    model = model.to(device=device, memory_format=memory_format)
    forward = torch.compile(model) if cfg.trainer.compile else model
    adapter = build_adapter(cfg.optimizer, model.named_parameters(), device)
    optimizer = adapter.optimizer
    return Run(
        cfg=cfg, run_dir=run_dir, device=device, model=model, forward=forward,
        optimizer=optimizer, adapter=adapter,
        schedule=Schedule(cfg.scheduler, optimizer, cfg.trainer.epochs, steps_per_epoch,
                          contract.objective_name(cfg)),
        scaler=grad_scaler(device, cfg.trainer.precision),
        normalize=Normalize(cfg.data.mean, cfg.data.std, cfg.data.image_size, device,
                            cfg.trainer.channels_last),
        generator=torch.Generator().manual_seed(cfg.trainer.seed),
        fingerprint=fingerprint,
        min_batch=min_batch,
    )


def _maybe_resume(run: Run) -> None:
    if not run.cfg.trainer.resume:
        return
    state = load_checkpoint(run.run_dir, run.device)
    if state is None:
        return
    if state.get("fingerprint") != run.fingerprint:
        log.warning("%s belongs to another config; starting from scratch", run.run_dir)
        return
    run.restore(state)
    log.info("resumed from %s after epoch %d", run.run_dir, len(run.rows))


def _run_epoch(run: Run, epoch: int, train_split: Split, val_split: Optional[Split],
               test_split: Split) -> dict:
    t0 = time.perf_counter()
    train_metrics = train_one_epoch(run, train_split, epoch)
    seconds = time.perf_counter() - t0  # train_one_epoch syncs: its result is on the host
    t1 = time.perf_counter()
    # evaluation, best.pt and the checkpoint see the weights the optimizer means to be evaluated
    run.adapter.eval_mode(run.forward, (run.normalize(images) for images, _ in eval_batches(
        train_split, run.cfg.data.batch_size)))
    row = {"epoch": epoch, **train_metrics, **run.adapter.extra_metrics()}
    if val_split is not None:
        row.update(evaluate(run, val_split, "val"))
    row.update(evaluate(run, test_split, "test"))
    non_finite = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
    if non_finite:
        raise Diverged(f"epoch {epoch}: {', '.join(non_finite)} not finite")
    trained = trained_count(len(train_split), run.cfg.data.batch_size, run.min_batch)
    # evaluate's tallies are read on the host: the evaluation has finished by now
    row.update(epoch_seconds=seconds, train_images_per_s=trained / seconds,
               eval_seconds=time.perf_counter() - t1)
    return row


def train_one_epoch(run: Run, split: Split, epoch: int) -> dict:
    """One pass over ``split`` in shuffled batches; returns train_loss, train_acc1, the lr of
    the first and the last step (lr, lr_last), and the steps and forward-backward passes taken
    (train_steps, train_passes: a closure optimizer such as LBFGS makes several a step)."""
    cfg = run.cfg
    run.forward.train()
    run.adapter.train_mode()
    tally, passes = Tally(), 0
    batches = train_batches(split, cfg.data.batch_size, run.generator, cfg.data.augment,
                            run.min_batch)
    steps = math.ceil(trained_count(len(split), cfg.data.batch_size, run.min_batch)
                      / cfg.data.batch_size)
    for step, (images, labels) in enumerate(_progress(batches, steps, epoch, cfg), start=1):
        lr_last = run.optimizer.param_groups[0]["lr"]  # the lr this step uses
        if step == 1:
            lr_first = lr_last
        evaluations = []
        run.adapter.step(_closure(run, images, labels, evaluations), run.scaler)
        loss, logits = evaluations[0]  # the batch at the step's starting point (LBFGS: of many)
        passes += len(evaluations)
        run.scaler.update()
        run.schedule.after_batch()
        tally.add(loss.detach() * len(labels), logits, labels)
        if step % DIVERGENCE_CHECK_STEPS == 0 and not tally.loss_below(cfg.trainer.max_loss):
            raise Diverged(f"epoch {epoch} step {step}: mean training loss above "
                           f"trainer.max_loss={cfg.trainer.max_loss} or not finite")
    if not tally.loss_below(cfg.trainer.max_loss):
        raise Diverged(f"epoch {epoch}: mean training loss above trainer.max_loss="
                       f"{cfg.trainer.max_loss} or not finite")
    metrics = tally.result("train")
    return {"train_loss": metrics["train_loss"], "train_acc1": metrics["train_acc1"],
            "lr": float(lr_first), "lr_last": float(lr_last), "train_steps": step,
            "train_passes": passes}


def _closure(run: Run, images: torch.Tensor, labels: torch.Tensor, evaluations: list):
    """The batch's loss and gradients at the current weights, appended to ``evaluations``."""
    def closure() -> torch.Tensor:
        with autocast(run.device, run.cfg.trainer.precision):
            logits = run.forward(run.normalize(images))
            loss = F.cross_entropy(logits.float(), labels)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        evaluations.append((loss.detach(), logits.detach()))
        return loss

    return closure


@torch.inference_mode()
def evaluate(run: Run, split: Split, prefix: str) -> dict:
    """Loss, top-1 and top-5 over every example of ``split``, as ``{prefix}_loss`` etc."""
    run.forward.eval()
    forward = inference_forward(run.forward) if run.cfg.trainer.fast_path else run.forward
    tally = Tally()
    for images, labels in eval_batches(split, run.cfg.data.eval_batch_size):
        with autocast(run.device, run.cfg.trainer.precision):
            logits = forward(run.normalize(images)).float()
        tally.add(F.cross_entropy(logits.double(), labels, reduction="sum"), logits, labels)
    return tally.result(prefix)


def _progress(batches, steps: int, epoch: int, cfg: DictConfig):
    if not (cfg.trainer.progress and sys.stderr.isatty()):
        return batches
    from tqdm import tqdm

    return tqdm(batches, total=steps, desc=f"epoch {epoch}/{cfg.trainer.epochs}", leave=False)


def _finish(run: Run, status: Status, error: Optional[str], name: str, start: float,
            facts: dict) -> Outcome:
    """Record how the run ended and drop a checkpoint it will never resume from."""
    if status not in contract.RESUMABLE and not run.cfg.trainer.keep_checkpoint:
        delete_checkpoint(run.run_dir)  # ~90 MB for ResNet18, useless once the run is over
    content = contract.summary(
        status, name, run.rows, error=error, **facts,
        wall_seconds=time.perf_counter() - start, device=str(run.device),
        parameters=count_parameters(run.model),
        trainable_parameters=count_parameters(run.model, trainable_only=True))
    RunDir(run.run_dir).write_summary(content)
    run.trackers.end(content)
    return Outcome(status, content["objective"], name, len(run.rows), error)
