from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from optsweep.conf_tree import conf_dir
from optsweep.config import register_configs
from tests import fakes

register_configs()
torch.set_num_threads(min(2, os.cpu_count() or 1))

# The smallest run that still exercises everything: 1 epoch on a few dozen images, no weights.
QUICK = ["data=digits", "model.weights=null", "trainer.epochs=1", "data.train_limit=60",
         "data.test_limit=30", "data.batch_size=16", "trainer.progress=false"]


def make_cfg(overrides: list[str] | None = None) -> DictConfig:
    """Compose the real config tree, as `python -m optsweep OVERRIDES` would."""
    with initialize_config_dir(version_base="1.3", config_dir=conf_dir()):
        return compose(config_name="config", overrides=list(overrides or []))


@pytest.fixture
def cfg_factory():
    return make_cfg


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    fakes.write_cifar100(root)
    fakes.write_cifar10(root)
    return root


@pytest.fixture(scope="session")
def hub_dir(tmp_path_factory) -> Path:
    hub = tmp_path_factory.mktemp("hub")
    fakes.write_resnet18_weights(hub)
    return hub


@pytest.fixture
def cached_weights(hub_dir, monkeypatch) -> Path:
    """Point torch hub at a cache holding a fabricated IMAGENET1K_V1 state dict."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub_dir))
    return hub_dir


@pytest.fixture
def no_network(monkeypatch):
    """Any download fails as it does offline."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "urlopen", refuse)
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", refuse)


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on loopback for this session (skips, or fails under CI=true)."""
    from tests.engines import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def slurm_env():
    """A single-node SLURM cluster for this session: the environment its clients need."""
    from tests.engines import slurm_cluster

    with slurm_cluster() as env:
        yield env


ENGINE_FIXTURES = {"postgres_url", "slurm_env"}  # tests/engines.py starts them


def pytest_collection_modifyitems(items):
    """A test that needs PostgreSQL or SLURM is an engines test, wherever it is written."""
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engines)


# --- the quick tier reaches every module ----------------------------------------------------------

QUICK_TIER = "not slow and not engines and not browser"  # make test-quick's -m


def project_modules() -> set[str]:
    """Every module of optsweep and of its Hydra plugin, by dotted name."""
    root = Path(__file__).resolve().parents[1]
    files = [*(root / "optsweep").rglob("*.py"), *(root / "hydra_plugins").rglob("*.py")]
    names = {".".join(f.relative_to(root).with_suffix("").parts) for f in files}
    return {n.removesuffix(".__init__") for n in names}


def pytest_sessionfinish(session, exitstatus):
    """After ``make test-quick`` over the whole suite: fail when a module was never imported, so
    that leaving out the slow tests never leaves a module untested."""
    config = session.config
    whole = not config.args or [Path(a).resolve() for a in config.args] == [
        Path(config.rootpath, "tests").resolve()]
    if config.option.markexpr != QUICK_TIER or config.option.keyword or not whole:
        return
    import sys

    missing = sorted(project_modules() - set(sys.modules))
    if missing and exitstatus == 0:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_line(f"quick tier: no quick test imports {', '.join(missing)}", red=True)
        session.exitstatus = 1
