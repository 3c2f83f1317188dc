"""Checks run once in the launching process before a sweep's first job: a cause that every job
would share (pretrained weights that cannot be had, a dataset that is not there, a selected tracker
or an optimizer's package that is not installed) is said once,
instead of launching N jobs that each fail on it.

Only keys the sweep does not vary are checked: a sweep over ``model.weights=null,IMAGENET1K_V1``
leaves the weights to each job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from optsweep.errors import OptsweepError
from optsweep.overrides import override_key
from optsweep.task import is_simulated

# A check runs unless the sweep varies one of its keys (a group choice counts as its whole group).
WEIGHTS_KEYS = {"model", "model.name", "model.weights"}
DATA_KEYS = {"data", "data.name", "data.root", "data.download"}
OPTIMIZER_KEYS = {"optimizer", "optimizer._target_"}


def swept_keys(config: DictConfig) -> set[str]:
    """Keys the sweep varies: sweep overrides on the command line and ``hydra.sweeper.params``."""
    task = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task", default=[]) or []]
    parsed = OverridesParser.create().parse_overrides(task)
    keys = {override_key(o.get_key_element()) for o in parsed if o.is_sweep_override()}
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    return keys | {str(k) for k in params}


def shared_problem(config: DictConfig) -> Optional[str]:
    """The message of the first check that fails for every job, or None."""
    from optsweep import tracking
    from optsweep.data import check_available  # torch-free, as this whole check of a sweep
    # without pretrained weights: the launching process of a sweep run by workers needs no torch

    contradiction = _direction_contradiction(config)
    if contradiction:
        return contradiction
    if is_simulated(config):  # reads no data, weights or optimizer package
        return _simulated_problem(config)
    swept = swept_keys(config)
    try:
        if "logger" in config and not swept & {"logger"}:
            tracking.require(tracking.selected(config))
        if not swept & WEIGHTS_KEYS and config.model.weights is not None:
            from optsweep.model import check_weights_available  # reads them: torch

            check_weights_available(config.model)
        if not swept & DATA_KEYS:
            check_available(config.data)
    except OptsweepError as exc:
        return str(exc)
    return _missing_optimizer_package(config, swept)


def swept_values(config: DictConfig, key: str) -> list[str]:
    """The values a sweep gives ``key`` (``optimizer=adam,lion``), as strings."""
    task = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task", default=[]) or []]
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    lines = [o for o in task if override_key(o) == key]
    lines += [f"{key}={params[key]}"] if key in params else []
    values = []
    for override in OverridesParser.create().parse_overrides(lines):
        values += (list(override.sweep_string_iterator()) if override.is_sweep_override()
                   else [override.get_value_element_as_str()])
    return values


def _missing_optimizer_package(config: DictConfig, swept: set[str]) -> Optional[str]:
    """An optimizer package (the ``optimizers`` extra) that the sweep's jobs would all miss, or
    that some of its ``optimizer=a,b`` choices miss: said once, with the extra to install."""
    from optsweep.conf_tree import conf_dir
    from optsweep.optim.packages import missing_package

    if "optimizer" not in config:
        return None
    if not swept & OPTIMIZER_KEYS:
        return missing_package(config.optimizer._target_)
    for name in swept_values(config, "optimizer"):
        path = Path(conf_dir()) / "optimizer" / f"{name}.yaml"  # a user's own is checked per job
        missing = missing_package(OmegaConf.load(path)._target_) if path.is_file() else None
        if missing:
            return f"optimizer={name}: {missing}"
    return None


def _simulated_problem(config: DictConfig) -> Optional[str]:
    """A setting every job of a simulated sweep would refuse (``optsweep.simulate.task.check``),
    for each optimizer it names."""
    from optsweep.simulate.task import check

    names = swept_values(config, "optimizer") or [
        OmegaConf.select(config, "hydra.runtime.choices.optimizer", default=None)]
    task = OmegaConf.masked_copy(config, [str(k) for k in config if k != "hydra"])
    for name in names:
        try:
            check(task, str(name))
        except OptsweepError as exc:
            return str(exc)
    return None


def _direction_contradiction(config: DictConfig) -> Optional[str]:
    """An Optuna direction that works against ``trainer.objective`` (maximising a loss)."""
    from optsweep import contract

    given = OmegaConf.select(config, "hydra.sweeper.direction", default=None)
    if not isinstance(given, str) or "trainer" not in config:
        return None  # not an Optuna sweep, or several objectives (not optsweep's task)
    name = contract.objective_name(config)
    if given.lower() != contract.direction(name):
        return (f"hydra.sweeper.direction={given} contradicts trainer.objective={name}, which "
                f"is to {contract.direction(name)}; drop hydra.sweeper.direction (optsweep's "
                "presets follow the objective) or choose another trainer.objective")
    return None
