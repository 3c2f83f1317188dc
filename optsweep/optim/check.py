"""What cannot work is one line before any data is read; what the authors advise against, a warning.

``check_optimizer(cfg)`` imports the ``_target_`` class (a missing package names the extra that
brings it), refuses what is not an optimizer or cannot train a classifier here, checks every key
against the class's named arguments (also for classes that take ``**kwargs``: an unknown key would
be swallowed silently), and finally builds the class once on a probe parameter, so that the class's
own argument checks (``lr < 0``, a bad ``betas``) run before the data is read too.
"""

from __future__ import annotations

import logging

import hydra.utils
import torch
from omegaconf import DictConfig

from optsweep.contract import BETA_KEYS
from optsweep.errors import ConfigError
from optsweep.optim.adapters import (
    adapter_class,
    estimates_step_size,
    has_train_eval,
    named_arguments,
    needs_closure,
)
from optsweep.optim.build import HYDRA_KEYS, NO_DECAY_KEY, build_adapter
from optsweep.optim.muon import Muon, bf16_warning
from optsweep.optim.packages import missing_package
from optsweep.runtime import resolve_device

log = logging.getLogger(__name__)

# Classes that cannot train a classifier's dense weights, with the reason.
REFUSED = {
    "SparseAdam": "it takes only sparse gradients (nn.Embedding(sparse=True)); a classifier's "
                  "weights have dense ones: use optimizer=adam",
}


def resolve_class(cfg: DictConfig) -> type:
    missing = missing_package(cfg._target_)
    if missing:
        raise ConfigError("optimizer._target_", cfg._target_, "an installed optimizer class",
                          missing.split(": ", 1)[1])
    try:
        cls = hydra.utils.get_class(cfg._target_)
    except Exception as exc:
        raise ConfigError("optimizer._target_", cfg._target_, "an importable optimizer class",
                          f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ConfigError("optimizer._target_", cfg._target_,
                          "a torch.optim.Optimizer subclass",
                          "name an optimizer class, e.g. torch.optim.SGD")
    return cls


def check_refused(cls: type, cfg: DictConfig) -> None:
    target = cfg.optimizer._target_
    if cls.__name__ in REFUSED:
        raise ConfigError("optimizer._target_", target, "an optimizer for dense gradients",
                          REFUSED[cls.__name__])
    if needs_closure(cls) and cls.__module__.startswith("schedulefree"):
        raise ConfigError("optimizer._target_", target, "a Schedule-Free class with train/eval",
                          "a closure variant has no eval mode, so its evaluation weights can be "
                          "neither evaluated nor saved: use optimizer=schedulefree_adamw")
    if needs_closure(cls) and cfg.trainer.precision == "fp16":
        raise ConfigError("trainer.precision", "fp16", "fp32 or bf16 with " + cls.__name__,
                          "its step re-evaluates the batch in a closure, which a GradScaler "
                          "cannot scale")


def check_keys(cls: type, cfg: DictConfig) -> None:
    """Raise ConfigError naming a key (``+optimizer.foo=1``) that ``cls`` does not take."""
    named = named_arguments(cls)
    allowed = {*named, *HYDRA_KEYS, *adapter_class(cls).own_keys,
               *(BETA_KEYS if "betas" in named else ()),
               *((NO_DECAY_KEY,) if "weight_decay" in named else ())}
    for key in cfg:
        if key not in allowed:
            raise ConfigError(f"optimizer.{key}", cfg[key], f"an argument of {cfg._target_}",
                              f"remove optimizer.{key}; {cls.__name__} takes "
                              f"{', '.join(sorted(allowed - set(HYDRA_KEYS)))}")


def probe(cfg: DictConfig) -> None:
    """Build the optimizer on one probe parameter, so that the class judges its arguments now."""
    # three layers, so that a class grouping them (Muon: input, hidden, head) builds every group
    probes = [(f"{layer}.weight", torch.nn.Parameter(torch.zeros(2, 2)))
              for layer in ("input", "hidden", "head")]
    try:
        build_adapter(cfg, probes, torch.device("cpu"))
    except Exception as exc:  # the class's own validation: ValueError, TypeError, ...
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise ConfigError("optimizer", cfg._target_, "arguments its class accepts",
                          reason) from None


def warn_against_advice(cls: type, cfg: DictConfig) -> None:
    if has_train_eval(cls) and cfg.scheduler.get("_target_") is not None:
        log.warning("%s is schedule-free: its authors advise scheduler=none (warmup is its own "
                    "optimizer.warmup_steps); scheduler=%s scales its lr on top", cls.__name__,
                    cfg.scheduler._target_)
    if estimates_step_size(cls) and cfg.optimizer.get("lr") != 1.0:
        log.warning("%s estimates its own step size: its authors advise optimizer.lr=1.0 (got "
                    "%s; scale the estimate with optimizer.d_coef instead)", cls.__name__,
                    cfg.optimizer.get("lr"))
    if cls is getattr(torch.optim, "Muon", None) or issubclass(cls, Muon):
        try:
            message = bf16_warning(resolve_device(cfg.trainer.device))
        except ConfigError:  # an unavailable device is refused where training resolves it
            message = None
        if message:
            log.warning(message)


def check_optimizer(cfg: DictConfig) -> None:
    """Every check of ``cfg.optimizer`` (with the trainer and scheduler it runs under)."""
    cls = resolve_class(cfg.optimizer)
    check_refused(cls, cfg)
    check_keys(cls, cfg.optimizer)
    probe(cfg.optimizer)
    warn_against_advice(cls, cfg)
