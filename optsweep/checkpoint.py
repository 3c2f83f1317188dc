"""``checkpoint.pt``: the last finished epoch of a run that can still resume.

It holds only tensors and plain values (model, optimizer and scaler state, the batch-order
generator, torch's RNG, the metric rows so far, the config fingerprint), so it is read with
``weights_only=True``: a file planted in a shared sweep directory cannot run code on resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from optsweep.contract import BEST_WEIGHTS_FILE, CHECKPOINT_FILE, atomic_write
from optsweep.errors import OptsweepError


class CheckpointError(OptsweepError):
    """A checkpoint that cannot be read (truncated, corrupt, or not a checkpoint)."""


def checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_FILE


def save_checkpoint(run_dir: Path, state: dict) -> None:
    atomic_write(checkpoint_path(run_dir), lambda f: torch.save(state, f), binary=True)


def load_checkpoint(run_dir: Path, device: torch.device) -> Optional[dict]:
    """The run's checkpoint, or None when there is none; CheckpointError when it is unusable."""
    path = checkpoint_path(run_dir)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # zip, pickle and unpickler errors all mean "not a usable file"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} cannot be read as a checkpoint ({type(exc).__name__}: {reason[:200]}); "
            "delete it to train this run from scratch, or set trainer.resume=false") from exc
    if not isinstance(state, dict) or "rows" not in state:
        raise CheckpointError(f"{path} is not an optsweep checkpoint; delete it to train this "
                              "run from scratch, or set trainer.resume=false")
    return state


def save_best_weights(run_dir: Path, model_state: dict) -> None:
    """``best.pt``: a plain state dict (``model.load_state_dict(torch.load(path))``)."""
    atomic_write(Path(run_dir) / BEST_WEIGHTS_FILE, lambda f: torch.save(model_state, f),
                 binary=True)


def delete_checkpoint(run_dir: Path) -> None:
    checkpoint_path(run_dir).unlink(missing_ok=True)
