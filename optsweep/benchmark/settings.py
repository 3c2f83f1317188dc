"""The benchmark's own settings: a preset from ``conf/benchmark/`` composed by Hydra with the
command line's benchmark keys; every other ``KEY=VALUE`` goes to the training runs.

    python -m optsweep.benchmark preset=demo workloads=[digits] budget=8 trainer.epochs=1

A misspelt benchmark key cannot reach the runs by mistake: a key that is neither a benchmark key
nor a key of the training config is refused when the first run is composed (Hydra names it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import MISSING, DictConfig, OmegaConf

from optsweep import contract
from optsweep.conf_tree import conf_dir
from optsweep.errors import ConfigError, OptsweepError
from optsweep.overrides import split_override

PRESET_KEY = "preset"
TUNED = "tuned"  # space=tuned: each optimizer in its own conf/space/<optimizer>.yaml


@dataclass
class BenchmarkConf:
    name: str = MISSING
    dir: str = MISSING
    workloads: List[str] = MISSING
    optimizers: List[str] = MISSING
    budget: int = MISSING  # trials per study
    seeds: int = MISSING  # confirmation seeds per study
    space: str = MISSING
    pruner: str = MISSING
    defaults_baseline: bool = MISSING
    select: str = MISSING
    metric: str = MISSING
    overrides: List[str] = field(default_factory=lambda: MISSING)
    pool: bool = MISSING  # one pool of slots for every step (optsweep.benchmark.pool)
    in_flight: int = MISSING  # trials of one study in flight at once; 0: the pool's rule


KEYS = frozenset(BenchmarkConf.__dataclass_fields__) | {PRESET_KEY}


def split_arguments(argv: list[str]) -> tuple[list[str], list[str], str]:
    """(benchmark overrides, run overrides, preset name) from the command line."""
    mine, runs, preset = [], [], "default"
    for arg in argv:
        key, value = split_override(arg)  # as written: +budget=6 is a run's override, not ours
        if key == PRESET_KEY and value is not None:
            preset = value
        elif key in KEYS:
            mine.append(arg)
        else:
            runs.append(arg)
    return mine, runs, preset


def load(argv: list[str]) -> tuple[DictConfig, list[str]]:
    """The benchmark's settings and the overrides for every run (the preset's, then argv's)."""
    mine, runs, preset = split_arguments(argv)
    ConfigStore.instance().store(name="benchmark_schema", node=BenchmarkConf)
    folder = Path(conf_dir()) / "benchmark"
    if not (folder / f"{preset}.yaml").is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise ConfigError(PRESET_KEY, preset, f"one of {known}", f"presets live in {folder}")
    try:
        OverridesParser.create().parse_overrides(runs)
        with initialize_config_dir(config_dir=str(folder), version_base="1.3"):
            cfg = compose(preset, overrides=mine)
    except HydraException as exc:
        raise OptsweepError(f"python -m optsweep.benchmark: {str(exc).splitlines()[0]}") from exc
    check(cfg)
    return cfg, [*cfg.overrides, *runs]


def check(cfg: DictConfig) -> None:
    """Values types cannot rule out, each named by its key."""
    if cfg.budget < 1:
        raise ConfigError("budget", cfg.budget, "trials per study, an integer >= 1")
    if cfg.seeds < 2:  # one seed has no spread: every verdict would be "not tested"
        raise ConfigError("seeds", cfg.seeds, "confirmation seeds per study, an integer >= 2 "
                          "(the verdicts compare seed spreads)")
    for key in ("workloads", "optimizers"):
        if not cfg[key] or len(set(cfg[key])) != len(cfg[key]):
            raise ConfigError(key, list(cfg[key]), "a list of distinct names, e.g. [adam,sgd]")
    if cfg.in_flight < 0:
        raise ConfigError("in_flight", cfg.in_flight, "trials of one study in flight at once, an "
                          "integer >= 1, or 0 for the pool's rule (the slots shared by the "
                          "studies still asking)")
    if not str(cfg.name) or "/" in str(cfg.name):
        raise ConfigError("name", cfg.name, "a folder name without /")
    problem = contract.selection_problem(cfg.select)
    if problem:  # checked here: a misspelt name would otherwise fall back to choosing on metric
        raise OptsweepError(f"select={cfg.select}: {problem}")
    if contract.metric_problem(cfg.metric):
        raise OptsweepError(f"metric={cfg.metric}: {contract.metric_problem(cfg.metric)}")


def as_dict(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)
