"""What the benchmark's one pool needs from Hydra beyond its public API, in one place.

Checked against hydra-core 1.3.2 and 1.3.8 (``hydra/_internal/hydra.py`` ``Hydra.multirun``,
``hydra/_internal/callbacks.py``, ``hydra/_internal/core_plugins/basic_sweeper.py``). The pool runs
each of its sweeps as ``Hydra.multirun`` runs one: the config composed in MULTIRUN mode, the
config's callbacks (``Callbacks``: optsweep's sweep summary, its run-directory guard) around it,
the sweeper instantiated through the public ``Plugins``; the config loader is the one
``@hydra.main`` builds (``create_config_search_path``, ``ConfigLoaderImpl``); a grid's jobs are
the basic sweeper's (``BasicSweeper.split_arguments``, after its ``hydra.sweeper.params``),
numbered as it numbers them.
"""

from __future__ import annotations

from typing import Any, List

from hydra._internal.callbacks import Callbacks
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import create_config_search_path
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig


def config_loader(config_dir: str) -> Any:
    """The loader ``@hydra.main(config_path=config_dir)`` composes with, without initialising
    Hydra's global state (the confirmation's choice composes through it meanwhile)."""
    return ConfigLoaderImpl(config_search_path=create_config_search_path(config_dir))


def callbacks(config: DictConfig) -> Any:
    """The ``hydra.callbacks`` of ``config``, as Hydra calls them around a multirun."""
    return Callbacks(config)


def grid_jobs(config_loader: Any, config: DictConfig, arguments: List[str]) -> List[List[str]]:
    """Every job's overrides, in the order Hydra's basic sweeper launches them (one batch)."""
    params = config.hydra.sweeper.get("params") or {}
    parser = OverridesParser.create(config_loader=config_loader)
    overrides = parser.parse_overrides([*(f"{k}={v}" for k, v in params.items()), *arguments])
    return [list(job) for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
