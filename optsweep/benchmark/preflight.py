"""Before the benchmark trains anything: every cell's config is composed and checked, and a cause
that its runs would share (missing data, weights, a package) is said once, naming the workload.

A study that fails after an hour because the fourth optimizer's space names a key its optimizer
does not have wastes the hour; so every (workload, optimizer) is composed first, its space's keys
are looked up in its optimizer's config, its values validated, and ``optsweep.sweep.preflight``
(the check every sweep runs) asked once per workload.
"""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from optsweep import contract
from optsweep.benchmark.plan import Cell, cells, tune_command
from optsweep.benchmark.settings import KEYS
from optsweep.conf_tree import conf_dir
from optsweep.config import register_configs, validate
from optsweep.errors import OptsweepError
from optsweep.sweep import preflight

_ABSENT = object()


def compose_cell(cfg: DictConfig, cell: Cell, overrides: list[str]) -> DictConfig:
    """The training config (with Hydra's) a trial of ``cell`` would get, before sampling."""
    arguments = tune_command(cfg, cell, overrides)[4:]  # after "python -m optsweep -m"
    try:
        with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
            return compose("config", overrides=arguments, return_hydra_config=True)
    except HydraException as exc:
        raise OptsweepError(composition_error(cell, str(exc).splitlines()[0])) from exc


def composition_error(cell: Cell, first: str) -> str:
    """Hydra's first line, said so that a cause shared by every cell reads the same for each."""
    if f"space/{cell.space}" in first and cell.space == cell.optimizer \
            and cell.optimizer not in options("optimizer"):  # space=tuned: a misspelt optimizer
        return (f"optimizers: {cell.optimizer} is no option of conf/optimizer/ (choose among "
                f"{', '.join(options('optimizer'))}) and has no conf/space/{cell.optimizer}.yaml "
                "(an optimizer of a hydra.searchpath folder needs its space file there too)")
    if "'hydra/sweeper/pruner/" in first:
        from optsweep.sweep.optuna_config import PRUNERS
        return (f"pruner={first.split('hydra/sweeper/pruner/')[1].split(chr(39))[0]}: no such "
                f"pruner; choose one of {', '.join(sorted(PRUNERS))}")
    if f"space/{cell.space}" in first:
        return (f"space={cell.space}: no conf/space/{cell.space}.yaml; write one (conf/space/"
                "adam.yaml shows the format), put it in a hydra.searchpath folder, or choose "
                "space=lr_only")
    for group, name in (("workload", cell.workload), ("optimizer", cell.optimizer)):
        if f"'{group}/{name}'" in first:
            return f"{group}={name}: no such option; choose one of " \
                   f"{', '.join(options(group))} (conf/{group}/)"
    if first.startswith("Could not override"):
        return f"{first} It is neither a benchmark key ({', '.join(sorted(KEYS))}) nor a key " \
               "of the training config"
    return f"workload={cell.workload} optimizer={cell.optimizer}: {first}"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(conf_dir()) / group).glob("*.yaml"))


def space_problem(composed: DictConfig, cell: Cell) -> str | None:
    """A searched key that the optimizer's config does not have (a typo would otherwise fail
    every trial, or add a key torch refuses)."""
    params = OmegaConf.select(composed, "hydra.sweeper.params", default=None) or {}
    for key in params:
        if str(key).startswith("+"):
            continue  # the user adds a key on purpose
        if OmegaConf.select(composed, str(key), default=_ABSENT) is _ABSENT:
            return (f"space={cell.space}: {key} is not a key of optimizer={cell.optimizer} "
                    f"(conf/optimizer/{cell.optimizer}.yaml); fix conf/space/{cell.space}.yaml "
                    "or choose another space")
    return None


def choice_problem(composed: DictConfig, cell: Cell) -> str | None:
    """A cell whose study would choose on the test set: no validation split (the auto objective
    falls back to test_acc1), or an objective or target metric that is not a validation one.
    Checked before ``validate``, whose rule for val_fraction=0 is to ask for a test objective."""
    if composed.data.val_fraction == 0:
        return (f"data.val_fraction=0 (workload={cell.workload}): no validation split, so the "
                f"studies would choose on {contract.AUTO_OBJECTIVE_WITHOUT_VAL}, the test set; "
                "set data.val_fraction above 0 (the workloads' data use 0.1)")
    objective = contract.objective_name(composed)
    problem = contract.selection_problem(objective)
    if problem:
        return f"trainer.objective={objective}: {problem}"
    target = OmegaConf.select(composed, "workload.target_metric", default=None)
    problem = target is not None and contract.selection_problem(str(target))
    if problem:
        return f"workload.target_metric={target} (workload={cell.workload}): {problem}"
    return None


def target_of(composed: DictConfig, workload: str) -> dict:
    spec = OmegaConf.select(composed, "workload", default=None)
    if spec is None or "target" not in spec or "target_metric" not in spec:
        raise OptsweepError(f"workload={workload}: sets no workload.target and "
                            "workload.target_metric (the validation value that 'reached' means); "
                            "add them to its file (conf/workload/digits.yaml shows how)")
    return {"target": float(spec.target), "target_metric": str(spec.target_metric)}


def check(cfg: DictConfig, overrides: list[str]) -> tuple[dict, dict, list[str]]:
    """({workload: target spec}, {workload: the study seed}, problems: each distinct cause once)."""
    register_configs()
    targets, seeds, problems = {}, {}, []
    for cell in cells(cfg):
        try:
            composed = compose_cell(cfg, cell, overrides)
            problem = space_problem(composed, cell) or choice_problem(composed, cell)
            if problem is None:
                validate(OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"]))
            if cell.workload not in targets:
                targets[cell.workload] = target_of(composed, cell.workload)
                seeds[cell.workload] = int(composed.trainer.seed)
                shared = preflight.shared_problem(composed)
                if shared:
                    problem = problem or f"workload={cell.workload}: {shared}"
        except OptsweepError as exc:
            problem = str(exc)
        if problem and problem not in problems:
            problems.append(problem)
    return targets, seeds, problems
