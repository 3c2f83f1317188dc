"""What this process may use of the machine (cores, memory), and the checks that keep a run inside
it: asked for more threads than cores, a run is capped with a warning rather than crawling; asked
for more memory than there is, it is refused before any data is read rather than failing minutes
later in the allocator.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from optsweep.errors import ConfigError

log = logging.getLogger(__name__)

# Bytes that ResNet18 keeps for its backward pass per input pixel of each training image (float32,
# activations only), measured with torch.autograd.graph.saved_tensors_hooks at 64 and 128 px:
# 447 and 443. A lower bound of training's peak, so a refusal never wrongs a run that would fit.
ACTIVATION_BYTES_PER_PIXEL = 440
FLOAT_BYTES = 4
CGROUP_LIMITS = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
                 ("/sys/fs/cgroup/memory/memory.limit_in_bytes",  # cgroup v1
                  "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def available_cores() -> int:
    """Cores this process may run on (its affinity: a container's or a scheduler's share)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def threads_per_job(cores: int, parallel_jobs: int) -> int:
    """Torch threads for each of ``parallel_jobs`` jobs so that together they use ``cores`` (a
    parallel sweep's jobs; the sweeper's process pool gives its running jobs the same share)."""
    return max(1, cores // max(1, parallel_jobs))


def capped_threads(requested: int, cores: Optional[int] = None) -> int:
    """``trainer.num_threads``, capped at the cores available: more threads than cores only make
    them wait on each other (1000 threads on 2 cores finished no epoch in 300 s)."""
    cores = cores or available_cores()
    if requested > cores:
        log.warning("trainer.num_threads=%d is more than the %d cores available to this process; "
                    "using %d", requested, cores, cores)
        return cores
    return requested


def _read_bytes(path: str) -> Optional[int]:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def available_memory() -> Optional[int]:
    """Bytes this process may still allocate: the smaller of the container's cgroup headroom
    (limit minus usage, where there is a limit) and the kernel's MemAvailable; None if unknown."""
    figures = []
    for limit_file, usage_file in CGROUP_LIMITS:
        limit, usage = _read_bytes(limit_file), _read_bytes(usage_file)
        # v1 writes "no limit" as ~2^63
        if limit is not None and usage is not None and limit < 2 ** 60:
            figures.append(max(0, limit - usage))
            break
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                figures.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return min(figures) if figures else None


def training_memory(images: int, decoded_size: int, batch_size: int, image_size: int) -> int:
    """Bytes a CPU run needs at least: the dataset as decoded (uint8, 3 x ``decoded_size``^2 per
    image), one float batch at ``image_size`` and what ResNet18 keeps of that batch for backward."""
    pixels = image_size * image_size
    return (images * 3 * decoded_size ** 2 + batch_size * 3 * pixels * FLOAT_BYTES
            + batch_size * pixels * ACTIVATION_BYTES_PER_PIXEL)


def check_memory(data: DictConfig, images: int, decoded_size: int,
                 available: Optional[int] = None) -> None:
    """Refuse (ConfigError) a ``data.image_size`` and ``data.batch_size`` that cannot fit in
    ``available`` bytes (default: ``available_memory()``), before any image is read."""
    available = available_memory() if available is None else available
    needed = training_memory(images, decoded_size, data.batch_size, data.image_size)
    if available is None or needed <= available:
        return
    gb = 1024 ** 3
    raise ConfigError("data.image_size", data.image_size,
                      f"a size whose training fits in the {available / gb:.1f} GB of memory "
                      "available",
                      f"{images} images decoded at {decoded_size}x{decoded_size} and a batch of "
                      f"data.batch_size={data.batch_size} at {data.image_size}x{data.image_size} "
                      f"with its activations need at least {needed / gb:.1f} GB; lower "
                      "data.image_size or data.batch_size")


def device_memory(device) -> Optional[int]:
    """Bytes free where training allocates: host memory on the CPU, the GPU's free memory on CUDA
    (the dataset, batches and activations all live there); None where unknown (MPS)."""
    if device.type == "cpu":
        return available_memory()
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    return None
