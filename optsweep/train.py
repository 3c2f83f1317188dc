"""The training loop: ``train(cfg, run_dir)`` trains one configuration and returns its objective.

A run writes ``metrics.csv`` after every epoch, ``checkpoint.pt`` while unfinished and
``summary.json`` at the end, whatever the end was (completed, diverged, pruned, interrupted,
failed). Rerun into the same directory, a completed or diverged run with the same config is not
trained again and an unfinished one resumes from its last finished epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from optsweep import runlog
from optsweep.config import validate
from optsweep.data import Split, load_splits
from optsweep.data.batches import Normalize, eval_batches, train_batches
from optsweep.errors import OptsweepError
from optsweep.inference import inference_forward
from optsweep.metrics import Tally
from optsweep.model import build_model, check_weights_available, count_parameters
from optsweep.optim import build_optimizer
from optsweep.runtime import (autocast, grad_scaler, resolve_device, seed_everything,
                              weight_memory_format)
from optsweep.small_maps import lower_point_convs

log = logging.getLogger(__name__)

WORST_ACCURACY = 0.0
WORST_LOSS = 1e9  # finite: sweepers (Optuna) crash on NaN or inf objectives
DIVERGENCE_CHECK_STEPS = 20  # how often the loss is checked for NaN/inf (each check syncs a GPU)
# keys that change speed or bookkeeping, never results: excluded from the config fingerprint
VOLATILE_KEYS = {"trainer": ("progress", "resume", "keep_checkpoint", "num_threads"),
                 "data": ("eval_batch_size", "root", "download")}


class EarlyStop(Exception):
    """Raised by an epoch hook to end a run early with ``status`` (e.g. a pruned sweep trial)."""

    def __init__(self, status: str, message: str = "") -> None:
        super().__init__(message or status)
        self.status = status


class Diverged(Exception):
    pass


EpochHook = Callable[[int, dict], None]
# Ends that a rerun of the same config would only repeat (training is deterministic per seed):
# skipped on rerun, checkpoint deleted.
FINAL_STATUSES = ("completed", "diverged")


def objective_name(cfg: DictConfig) -> str:
    if cfg.trainer.objective != "auto":
        return cfg.trainer.objective
    return "val_acc1" if cfg.data.val_fraction > 0 else "test_acc1"


def worst_value(name: str) -> float:
    return WORST_LOSS if name.endswith("_loss") else WORST_ACCURACY


def config_fingerprint(cfg: DictConfig) -> str:
    container = OmegaConf.to_container(cfg, resolve=True)
    for group, keys in VOLATILE_KEYS.items():
        for key in keys:
            container.get(group, {}).pop(key, None)
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Run:
    """Everything a run has in memory; what it checkpoints is ``checkpoint_state``."""

    cfg: DictConfig
    run_dir: Optional[Path]  # None for a run built only to be timed (benchmarks)
    device: torch.device
    model: torch.nn.Module
    forward: torch.nn.Module  # the model, or its compiled wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    normalize: Normalize
    generator: torch.Generator
    fingerprint: str
    rows: list = field(default_factory=list)

    def checkpoint_state(self) -> dict:
        return {"fingerprint": self.fingerprint, "rows": self.rows,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state()}

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.rows = list(state["rows"])


def train(cfg: DictConfig, run_dir: str | Path, on_epoch: Optional[EpochHook] = None) -> float:
    """Train ``cfg`` writing into ``run_dir``; return the final epoch's objective (finite)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        validate(cfg)
    except OptsweepError as exc:
        write_failed_summary(run_dir, str(exc))
        raise
    name = objective_name(cfg)
    fingerprint = config_fingerprint(cfg)
    previous = runlog.read_summary(run_dir)
    if cfg.trainer.resume and previous and previous.get("status") in FINAL_STATUSES \
            and previous.get("config_fingerprint") == fingerprint:
        log.info("%s: already %s with this config; not trained again", run_dir,
                 previous["status"])
        return float(previous["objective"])
    start = time.perf_counter()
    try:
        check_weights_available(cfg.model)  # fail on missing weights before reading any data
        device = resolve_device(cfg.trainer.device)
        if cfg.trainer.num_threads:
            torch.set_num_threads(cfg.trainer.num_threads)
        seed_everything(cfg.trainer.seed)
        splits = load_splits(cfg.data, cfg.trainer.seed)
        run = build_run(cfg, device, splits.num_classes, run_dir, fingerprint)
    except OptsweepError as exc:
        write_failed_summary(run_dir, str(exc), name)
        raise
    train_split = splits.train.to(device)
    val_split = splits.val.to(device) if splits.val is not None else None
    test_split = splits.test.to(device)

    status, error = "completed", None
    try:
        _maybe_resume(run)
        for epoch in range(len(run.rows) + 1, cfg.trainer.epochs + 1):
            row = _run_epoch(run, epoch, train_split, val_split, test_split)
            run.rows.append(row)
            runlog.write_metrics(run_dir, run.rows)
            runlog.save_checkpoint(run_dir, run.checkpoint_state())
            _log_epoch(row, cfg.trainer.epochs)
            if on_epoch is not None:
                on_epoch(epoch, row)
    except Diverged as exc:
        status, error = "diverged", str(exc)
        log.warning("%s: diverged: %s", run_dir, exc)
    except EarlyStop as exc:
        status, error = exc.status, str(exc)
        log.info("%s: stopped early (%s)", run_dir, exc)
    except KeyboardInterrupt:
        _finish(run, "interrupted", "interrupted by the user or the scheduler", name, start)
        raise
    except Exception as exc:
        _finish(run, "failed", f"{type(exc).__name__}: {exc}", name, start)
        raise
    return _finish(run, status, error, name, start)


def build_run(cfg: DictConfig, device: torch.device, num_classes: int,
              run_dir: Optional[Path] = None, fingerprint: str = "") -> Run:
    """Model, optimizer, scaler and batch pipeline for ``cfg`` on ``device``, before any epoch.

    Public so that benchmarks time ``train_one_epoch``/``evaluate`` on exactly what ``train`` runs.
    """
    memory_format = weight_memory_format(device, cfg.trainer.channels_last)
    model = build_model(cfg.model, num_classes)
    if cfg.trainer.fast_path:
        lower_point_convs(model)
    model = model.to(device=device, memory_format=memory_format)
    forward = torch.compile(model) if cfg.trainer.compile else model
    return Run(
        cfg=cfg, run_dir=run_dir, device=device, model=model, forward=forward,
        optimizer=build_optimizer(cfg.optimizer, model.parameters(), device),
        scaler=grad_scaler(device, cfg.trainer.precision),
        normalize=Normalize(cfg.data.mean, cfg.data.std, cfg.data.image_size, device,
                            cfg.trainer.channels_last),
        generator=torch.Generator().manual_seed(cfg.trainer.seed),
        fingerprint=fingerprint,
    )


def _maybe_resume(run: Run) -> None:
    path = run.run_dir / runlog.CHECKPOINT_FILE
    if not (run.cfg.trainer.resume and path.is_file()):
        return
    state = torch.load(path, map_location=run.device, weights_only=False)
    if state.get("fingerprint") != run.fingerprint:
        log.warning("%s belongs to another config; starting from scratch", path)
        return
    run.restore(state)
    log.info("resumed from %s after epoch %d", path, len(run.rows))


def _run_epoch(run: Run, epoch: int, train_split: Split, val_split: Optional[Split],
               test_split: Split) -> dict:
    t0 = time.perf_counter()
    train_metrics = train_one_epoch(run, train_split, epoch)
    seconds = time.perf_counter() - t0  # train_one_epoch syncs: its result is on the host
    row = {"epoch": epoch, **train_metrics}
    batch = run.cfg.data.eval_batch_size
    if val_split is not None:
        row.update(evaluate(run.forward, val_split, batch, run.normalize, run, "val"))
    row.update(evaluate(run.forward, test_split, batch, run.normalize, run, "test"))
    non_finite = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
    if non_finite:
        raise Diverged(f"epoch {epoch}: {', '.join(non_finite)} not finite")
    row.update(lr=run.optimizer.param_groups[0]["lr"], epoch_seconds=seconds,
               train_images_per_s=len(train_split) / seconds)
    return row


def train_one_epoch(run: Run, split: Split, epoch: int) -> dict:
    """One pass over ``split`` in shuffled batches; returns train_loss and train_acc1."""
    cfg = run.cfg
    run.forward.train()
    tally = Tally()
    batches = train_batches(split, cfg.data.batch_size, run.generator, cfg.data.augment)
    steps = math.ceil(len(split) / cfg.data.batch_size)
    for step, (images, labels) in enumerate(_progress(batches, steps, epoch, cfg), start=1):
        with autocast(run.device, cfg.trainer.precision):
            logits = run.forward(run.normalize(images))
            loss = F.cross_entropy(logits.float(), labels)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        tally.add(loss.detach() * len(labels), logits, labels)
        if step % DIVERGENCE_CHECK_STEPS == 0 and not tally.loss_below(cfg.trainer.max_loss):
            raise Diverged(f"epoch {epoch} step {step}: mean training loss above "
                           f"trainer.max_loss={cfg.trainer.max_loss} or not finite")
    if not tally.loss_below(cfg.trainer.max_loss):
        raise Diverged(f"epoch {epoch}: mean training loss above trainer.max_loss="
                       f"{cfg.trainer.max_loss} or not finite")
    metrics = tally.result("train")
    return {"train_loss": metrics["train_loss"], "train_acc1": metrics["train_acc1"]}


@torch.inference_mode()
def evaluate(model: torch.nn.Module, split: Split, batch_size: int, normalize: Normalize,
             run: Run, prefix: str) -> dict:
    """Loss, top-1 and top-5 over every example of ``split``."""
    model.eval()
    forward = inference_forward(model) if run.cfg.trainer.fast_path else model
    tally = Tally()
    for images, labels in eval_batches(split, batch_size):
        with autocast(run.device, run.cfg.trainer.precision):
            logits = forward(normalize(images)).float()
        tally.add(F.cross_entropy(logits.double(), labels, reduction="sum"), logits, labels)
    return tally.result(prefix)


def _progress(batches, steps: int, epoch: int, cfg: DictConfig):
    if not (cfg.trainer.progress and sys.stderr.isatty()):
        return batches
    from tqdm import tqdm

    return tqdm(batches, total=steps, desc=f"epoch {epoch}/{cfg.trainer.epochs}", leave=False)


def _log_epoch(row: dict, epochs: int) -> None:
    parts = [f"epoch {row['epoch']}/{epochs}", f"train_loss={row['train_loss']:.4f}",
             f"train_acc1={row['train_acc1']:.4f}"]
    parts += [f"{k}={row[k]:.4f}" for k in ("val_acc1", "test_acc1", "test_acc5") if k in row]
    parts += [f"{row['epoch_seconds']:.1f}s", f"{row['train_images_per_s']:.0f} img/s"]
    log.info(" ".join(parts))


def _best_row(rows: list, name: str) -> Optional[dict]:
    """The best validation epoch (by the objective's metric measured on the validation split)."""
    key = "val_" + name.split("_", 1)[1]
    scored = [r for r in rows if r.get(key) is not None]
    if not scored:
        return None
    pick = min if key.endswith("_loss") else max
    return pick(scored, key=lambda r: r[key])


def write_failed_summary(run_dir: Path, error: str, name: str = "val_acc1") -> None:
    """A run that failed before training (bad config, missing data, a sweep job's crash) is still
    a recorded result, with the worst finite objective."""
    runlog.write_summary(run_dir, {
        "status": "failed", "objective": worst_value(name), "objective_name": name,
        "epochs_completed": 0, "final": None, "best": None, "error": error,
        "versions": runlog.versions()})


def _finish(run: Run, status: str, error: Optional[str], name: str, start: float) -> float:
    final = run.rows[-1] if run.rows else None
    value = final[name] if (final and status in ("completed", "pruned")) else worst_value(name)
    if status in FINAL_STATUSES and not run.cfg.trainer.keep_checkpoint:
        (run.run_dir / runlog.CHECKPOINT_FILE).unlink(missing_ok=True)
    runlog.write_summary(run.run_dir, {
        "status": status, "objective": value, "objective_name": name,
        "epochs_completed": len(run.rows), "epochs_planned": run.cfg.trainer.epochs,
        "final": final, "best": _best_row(run.rows, name), "error": error,
        "wall_seconds": time.perf_counter() - start, "device": str(run.device),
        "parameters": count_parameters(run.model),
        "trainable_parameters": count_parameters(run.model, trainable_only=True),
        "config_fingerprint": run.fingerprint, "versions": runlog.versions(),
    })
    return float(value)
