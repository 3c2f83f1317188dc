"""`pip install .` (not editable) ships the config tree inside the package, where conf_dir() finds
it, and building it prints no packaging warning."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tests import processes

ROOT = processes.ROOT

# Composed by the installed copy, from a folder outside the checkout: the package, the config tree
# it found and a config composed from it (with the Hydra callbacks the tree names).
COMPOSE_FROM_SITE = """
import json, sys
sys.path.insert(0, {site!r})
from hydra import compose, initialize_config_dir
import optsweep, optsweep.conf_tree as tree
from optsweep.config import register_configs
register_configs()
with initialize_config_dir(version_base="1.3", config_dir=tree.conf_dir()):
    cfg = compose("config", overrides=["sweep=lr_search", "optimizer=rmsprop"],
                  return_hydra_config=True)
print(json.dumps({{"package": optsweep.__file__, "conf": tree.conf_dir(),
                  "optimizer": cfg.optimizer._target_,
                  "callbacks": sorted(c._target_ for c in cfg.hydra.callbacks.values())}}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The wheel built from this checkout, and what the build printed (verbose: setuptools'
    warnings are only shown so)."""
    dist = tmp_path_factory.mktemp("dist")
    built = processes.module("pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w",
                             str(dist), str(ROOT), timeout=300, check=True)
    (found,) = dist.glob("optsweep-*.whl")
    return found, built.stdout + built.stderr


def test_building_the_wheel_prints_no_package_would_be_ignored_warning(wheel):
    _, output = wheel
    assert "would be ignored" not in output


def test_wheel_carries_conf_and_installed_copy_composes_from_it(wheel, tmp_path):
    found, _ = wheel
    names = set(zipfile.ZipFile(found).namelist())
    shipped = {p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml")}
    assert {f"optsweep/conf/{name}" for name in shipped} <= names
    modules = {p.relative_to(ROOT).as_posix() for package in ("optsweep", "hydra_plugins")
               for p in (ROOT / package).rglob("*.py")}
    assert modules <= names, f"not in the wheel: {sorted(modules - names)}"
    # hydra_plugins is a namespace shared with every other Hydra plugin: never ship its __init__
    assert "hydra_plugins/__init__.py" not in names

    site = tmp_path / "site"
    processes.module("pip", "install", "-q", "--no-deps", "--target", str(site), str(found),
                     timeout=300, check=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    result = processes.python("-c", COMPOSE_FROM_SITE.format(site=str(site)), cwd=outside,
                              env={"PYTHONPATH": ""}, check=True)
    composed = json.loads(result.stdout.strip().splitlines()[-1])
    assert composed["package"] == str(site / "optsweep" / "__init__.py")
    assert composed["conf"] == str(site / "optsweep" / "conf")
    assert composed["optimizer"] == "torch.optim.RMSprop"
    assert composed["callbacks"] == ["optsweep.rundir.RunDirGuard",
                                     "optsweep.sweep.callbacks.SweepSummary"]


def test_hydra_finds_the_sweeper_from_any_directory(tmp_path):
    """Hydra scans the hydra_plugins namespace: the installed package must extend it, whatever the
    working directory (an editable install once mapped it to nothing)."""
    probe = ("from hydra.core.plugins import Plugins; from hydra.plugins.sweeper import Sweeper; "
             "print([p.__module__ for p in Plugins.instance().discover(Sweeper)])")
    found = processes.code(probe, cwd=tmp_path, env={"PYTHONPATH": ""}, check=True).stdout
    assert "hydra_plugins.optsweep_sweeper.optsweep_optuna_sweeper" in found
