"""What a run leaves on disk, written atomically so that a crash never leaves half a file:
``metrics.csv`` (one row per finished epoch), ``summary.json`` and ``checkpoint.pt``.

Each file is written to a temporary name in the same directory, flushed, fsynced and renamed over
the old one: a reader sees the old file or the new one, never a mix.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

METRIC_COLUMNS = ["epoch", "train_loss", "train_acc1", "val_loss", "val_acc1", "val_acc5",
                  "test_loss", "test_acc1", "test_acc5", "lr", "epoch_seconds",
                  "train_images_per_s"]
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    """Rewrite metrics.csv with every finished epoch (a few KB: cheaper than any append protocol)."""
    def write(f: io.TextIOBase) -> None:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in METRIC_COLUMNS})

    atomic_write(run_dir / METRICS_FILE, write)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a diverged value is recorded as null
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_summary(run_dir: Path, summary: dict) -> None:
    atomic_write(run_dir / SUMMARY_FILE,
                 lambda f: json.dump(_json_safe(summary), f, indent=2, allow_nan=False))


def read_summary(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None


def save_checkpoint(run_dir: Path, state: dict) -> None:
    atomic_write(run_dir / CHECKPOINT_FILE, lambda f: torch.save(state, f), binary=True)


def versions() -> dict:
    import torchvision

    import optsweep

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "optsweep": optsweep.__version__}
