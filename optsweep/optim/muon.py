"""Muon as Keller Jordan's recipe runs it on a convolutional network: one optimizer, two groups.

Muon (https://kellerjordan.github.io/posts/muon/; github.com/KellerJordan/Muon, its README's
``MuonWithAuxAdam``) orthogonalises the momentum of each hidden layer's weight matrix; a
convolution's filters count as one (out, in x k x k) matrix. The input layer, the head, biases and
norm weights are trained by AdamW, each group with its own learning rate. ``torch.optim.Muon``
(torch >= 2.9) refuses any tensor that is not 2-D, so this class hands it a 2-D view that shares
storage with each 4-D filter (its update lands in the filter) and points the view's gradient at
the filter's; the AdamW group is ``torch.optim.AdamW``. Which layer is which is read from the
model's parameter order: the first and the last weight of 2 or 4 dimensions (ResNet18: ``conv1``
and ``fc``) are the input layer and the head.

Arguments keep torch.optim.Muon's names for the Muon group (``lr``, ``momentum``, ...) and
``adamw_*`` for the AdamW group, so that either group's hyperparameters can be swept by name.

torch.optim.Muon runs its Newton-Schulz iteration in bfloat16 and takes no dtype or function to
change that, so on a CPU without bfloat16 matrix instructions (which then emulates them) a run is
warned at its start (``bf16_warning``, called by optsweep.optim.check) rather than left to crawl.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import torch

from optsweep.optim.build import weight_decay_groups

MATRIX_DIMS = (2, 4)  # linear weights and convolution filters
CPUINFO = Path("/proc/cpuinfo")  # Linux's; elsewhere there is nothing to read and no warning
# bfloat16 matrix multiplies in hardware: x86's AVX512-BF16 and AMX, Arm's BF16 (``Features``)
BF16_MATRIX_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags a /proc/cpuinfo text lists (x86's ``flags``, Arm's ``Features`` lines)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def bf16_warning(device: torch.device) -> Optional[str]:
    """What to expect of Muon on ``device`` where its CPU has no bfloat16 matrix instructions, else
    None (a GPU, such a CPU, or a CPU whose flags cannot be read)."""
    if device.type != "cpu":
        return None
    try:
        flags = cpu_flags(CPUINFO.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    if not flags or flags & set(BF16_MATRIX_FLAGS):
        return None
    return ("optimizer=muon: this CPU has no bfloat16 matrix instructions (no avx512_bf16, "
            f"amx_bf16 or bf16 in {CPUINFO}), and torch.optim.Muon runs Newton-Schulz in "
            "bfloat16, so each step is tens of times slower than in float32 (a ResNet18 step took "
            "106 s against Adam's 0.4 s on a 2-core AMD EPYC): train Muon on a GPU or on a CPU "
            "with AVX512-BF16 or AMX")


def split_for_muon(named: list) -> tuple[list, list]:
    """(Muon's, AdamW's) ``(name, parameter)`` pairs: hidden matrices for Muon, the rest AdamW."""
    matrices = [name for name, p in named if p.ndim in MATRIX_DIMS]
    hidden = set(matrices[1:-1])  # not the input layer, not the head
    return ([(n, p) for n, p in named if n in hidden],
            [(n, p) for n, p in named if n not in hidden])


def matrix_view(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as an (out, -1) matrix sharing its storage. A channels-last filter is flattened
    as (out, k x k x in): a permutation of the columns, which Newton-Schulz orthogonalisation
    commutes with."""
    if tensor.ndim == 4 and not tensor.is_contiguous():
        tensor = tensor.permute(0, 2, 3, 1)
    return tensor.view(tensor.shape[0], -1)


class Muon(torch.optim.Optimizer):
    """torch.optim.Muon on the hidden matrices and torch.optim.AdamW on the rest, stepped as one
    optimizer (one GradScaler, one lr schedule scaling both groups' lr)."""

    takes_named_parameters = True  # optsweep.optim.build passes model.named_parameters()

    def __init__(self, params: Iterable, lr: float = 0.02, weight_decay: float = 0.01,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: tuple = (3.4445, -4.775, 2.0315), eps: float = 1e-7,
                 ns_steps: int = 5, adjust_lr_fn: Optional[str] = None, adamw_lr: float = 3e-4,
                 adamw_beta1: float = 0.9, adamw_beta2: float = 0.95, adamw_eps: float = 1e-10,
                 adamw_weight_decay: float = 0.01, no_decay_norm_bias: bool = False) -> None:
        named = [item if isinstance(item, tuple) else (str(i), item)
                 for i, item in enumerate(params)]
        hidden, rest = split_for_muon(named)
        self._pairs = [(p, matrix_view(p.detach())) for _, p in hidden]
        self.inner = []
        if self._pairs:
            self.inner.append(torch.optim.Muon(
                [m for _, m in self._pairs], lr=lr, weight_decay=weight_decay, momentum=momentum,
                nesterov=nesterov, ns_coefficients=tuple(ns_coefficients), eps=eps,
                ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn))
        if rest:
            self.inner.append(torch.optim.AdamW(
                weight_decay_groups(rest, no_decay_norm_bias), lr=adamw_lr,
                betas=(adamw_beta1, adamw_beta2), eps=adamw_eps, weight_decay=adamw_weight_decay))
        filters = iter([p for p, _ in self._pairs])
        groups = [{**_hyper(g), "params": [next(filters) for _ in g["params"]]
                   if isinstance(opt, torch.optim.Muon) else g["params"]}
                  for opt in self.inner for g in opt.param_groups]
        super().__init__(groups, {})

    def _inner_groups(self) -> list[dict]:
        return [g for opt in self.inner for g in opt.param_groups]

    def _sync(self) -> None:
        """Hyperparameters set on this optimizer's groups (an lr schedule) reach the inner ones."""
        for outer, inner in zip(self.param_groups, self._inner_groups()):
            inner.update(_hyper(outer))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for filt, matrix in self._pairs:
            matrix.grad = None if filt.grad is None else matrix_view(filt.grad).reshape(
                matrix.shape)
        self._sync()
        for opt in self.inner:
            opt.step()
        for _, matrix in self._pairs:
            matrix.grad = None  # the filter keeps its own; this one would only hold memory
        return loss

    def state_dict(self) -> dict:
        self._sync()
        return {"inner": [opt.state_dict() for opt in self.inner]}

    def load_state_dict(self, state_dict: dict) -> None:
        for opt, state in zip(self.inner, state_dict["inner"], strict=True):
            opt.load_state_dict(state)
        for outer, inner in zip(self.param_groups, self._inner_groups()):
            outer.update(_hyper(inner))


def _hyper(group: dict) -> dict:
    return {k: v for k, v in group.items() if k != "params"}
