"""The plugin's configuration composes in any Hydra app (its groups live in Hydra's ConfigStore, not
in optsweep's conf/), with hydra-optuna-sweeper 1.3's keys and defaults; params read as in 1.3."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.utils import instantiate
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.optsweep_sweeper import optsweep_optuna_sweeper as plugin
from optsweep.sweep import search_space, storage
from optsweep.sweep.errors import SweepError
from optsweep.sweep.optuna_config import PRUNERS, SAMPLERS

from .conftest import APPS


def sweeper_config(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(APPS / "conf")):
        return compose("task", overrides=list(overrides), return_hydra_config=True).hydra.sweeper


def test_defaults_are_hydra_optuna_sweepers_plus_a_median_pruner():
    cfg = sweeper_config("hydra.sweeper.n_jobs=2")
    assert cfg._target_ == "hydra_plugins.optsweep_sweeper.optsweep_optuna_sweeper.OptunaSweeper"
    assert cfg.direction == "minimize" and cfg.n_jobs == 2 and cfg.max_failure_rate == 0.0
    assert cfg.sampler._target_ == "optuna.samplers.TPESampler"
    assert cfg.pruner._target_ == "optuna.pruners.MedianPruner"
    assert cfg.storage is None and cfg.custom_search_space is None


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_every_pruner_composes_and_instantiates(name):
    extra = {"percentile": ["hydra.sweeper.pruner.percentile=25.0"],
             "patient": ["hydra.sweeper.pruner.patience=2"],
             "threshold": ["hydra.sweeper.pruner.upper=1.0"]}.get(name, [])
    pruner = instantiate(sweeper_config(f"hydra/sweeper/pruner={name}", *extra).pruner)
    assert type(pruner).__name__ == PRUNERS[name]._target_.rsplit(".", 1)[-1]


@pytest.mark.parametrize("name", sorted(set(SAMPLERS) - {"motpe"}))
def test_every_sampler_composes(name):
    assert sweeper_config(f"hydra/sweeper/sampler={name}").sampler._target_ == \
        SAMPLERS[name]._target_


def test_the_plugins_nodes_replace_a_node_stored_before_them_under_a_shared_name():
    # what happens if hydra-optuna-sweeper were importable too: ConfigStore keeps the last node
    # stored under hydra/sweeper/sampler/tpe; ours is stored when the plugin registers (at import
    # and at Hydra's plugin scan), and its provider names it
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper/sampler", name="tpe", provider="optuna_sweeper",
                node={"_target_": "optuna.samplers.TPESampler", "consider_prior": True})
    plugin.register_configs()
    node = store.load("hydra/sweeper/sampler/tpe.yaml")
    assert node.provider == plugin.PROVIDER == "optsweep_optuna_sweeper"
    assert "n_ei_candidates" in node.node


def test_params_read_as_hydra_optuna_sweeper_reads_them():
    space, fixed = search_space.parse(
        {"a": "choice(1, 2.5, red)", "b": "range(1, 4)", "c": "range(0.5, 2.0, 0.5)",
         "d": "tag(log, interval(1e-5, 1e-1))", "e": "int(interval(1, 10))", "f": "interval(0, 1)",
         "g": 3}, None, ["h=[1,2]", "f=0.25"])
    assert space["a"] == CategoricalDistribution([1, 2.5, "red"])
    assert space["b"] == IntDistribution(1, 4, step=1)  # 1.3: stop is the distribution's high
    assert space["c"] == FloatDistribution(0.5, 2.0, step=0.5)
    assert space["d"] == FloatDistribution(1e-5, 1e-1, log=True)
    assert space["e"] == IntDistribution(1, 10)  # interval(1, 10) alone is float, as in Hydra
    assert fixed == {"g": "3", "h": "[1,2]", "f": "0.25"}  # the command line wins over the config
    grid = search_space.grid({k: space[k] for k in "abc"})
    assert grid == {"a": [1, 2.5, "red"], "b": [1, 2, 3], "c": [0.5, 1.0, 1.5]}
    with pytest.raises(SweepError, match="grid sampler needs choice"):
        search_space.grid({"d": space["d"]})



def test_defaults_keep_what_each_distribution_holds_and_say_why_of_the_rest():
    space, _ = search_space.parse(
        {"opt.wd": "choice(0, 1e-4)", "opt.nesterov": "choice(0, 1)", "opt.lr": "tag(log, "
         "interval(1e-5, 1e-1))", "opt.eps": "tag(log, interval(1e-10, 1e-2))", "opt.n": "int("
         "interval(1, 10))", "opt.b": "range(0.5, 2.0, 0.5)", "opt.k": "interval(0, 1)",
         "opt.missing": "interval(0, 1)"}, None, [])
    config = {"opt": {"wd": 0.0, "nesterov": False, "lr": 1.0, "eps": 1e-8, "n": 4, "b": 1.25,
                      "k": "x"}}
    held, left_out = search_space.defaults(space, config)
    # 0.0 becomes the choice 0 (the override reads as the space writes it); False is not 0
    assert held == {"opt.wd": 0, "opt.eps": 1e-8, "opt.n": 4}
    assert left_out == {
        "opt.nesterov": "default False is not one of choice(0, 1)",
        "opt.lr": "default 1.0 is outside its log range [1e-05, 0.1]",
        "opt.b": "default 1.25 is not on its steps of 0.5 from 0.5",
        "opt.k": "default x is not a finite number",
        "opt.missing": "is not set in the config"}
    assert search_space.defaults(space, {"opt": {"lr": 0.0}})[1]["opt.lr"] == \
        "default 0.0 is outside its log range [1e-05, 0.1]"  # Optuna's log scale has no 0

def test_legacy_search_space_entries_become_distributions():
    with pytest.warns(FutureWarning, match="deprecated"):
        space, _ = search_space.parse(None, {"x": {"type": "int", "low": 1, "high": 9, "step": 2},
                                             "z": {"type": "categorical", "choices": [1, 2]}}, [])
    assert space == {"x": IntDistribution(1, 9, step=2), "z": CategoricalDistribution([1, 2])}


@pytest.mark.parametrize("url, path", [("journal:///abs/optuna.journal", "/abs/optuna.journal"),
                                       ("journal:rel/optuna.journal", "rel/optuna.journal")])
def test_journal_storage_strings_name_a_file_and_jobs_get_an_absolute_one(url, path, tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(storage.journal_path(url)) == path
    absolute = storage.absolute(url)
    assert absolute.startswith("journal:///") and storage.journal_path(absolute).is_absolute()
    assert storage.absolute("sqlite:///x/optuna.db") == f"sqlite:///{tmp_path}/x/optuna.db"
    assert storage.shown("postgresql://me:secret@host/db") == "postgresql://me:***@host/db"


def test_seeds_differ_per_trial_but_not_for_grid_and_qmc():
    from optsweep.sweep._optuna_impl import SamplerFactory

    tpe = SamplerFactory({"_target_": "optuna.samplers.TPESampler", "seed": 3})
    assert tpe(0) is not tpe(1)
    grid = SamplerFactory({"_target_": "optuna.samplers.GridSampler", "seed": None})
    grid.grid = {"x": [1, 2]}
    assert grid(0) is grid(1)


def test_cmaes_without_its_package_is_an_error_naming_the_extra():
    import importlib.util

    from optsweep.sweep._optuna_impl import SamplerFactory

    if importlib.util.find_spec("cmaes") is not None:
        pytest.skip("cmaes is installed")
    with pytest.raises(SweepError, match=r"pip install 'optsweep\[cmaes\]'"):
        SamplerFactory({"_target_": "optuna.samplers.CmaEsSampler", "seed": 0})
