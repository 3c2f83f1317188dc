"""Every configuration a user can name composes, and bad values are named before training."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from optsweep.conf_tree import conf_dir
from optsweep.errors import ConfigError
from optsweep.optim.check import REFUSED
from optsweep.simulate import task as simulate
from optsweep.train import check_config
from tests.conftest import make_cfg

CONF = Path(conf_dir())


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_defaults_compose_to_the_study_setting():
    cfg = make_cfg()
    assert cfg.model.name == "resnet18" and cfg.model.weights == "IMAGENET1K_V1"
    assert cfg.data.name == "cifar100" and cfg.data.batch_size == 128
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 1e-3
    assert cfg.trainer.epochs == 10 and cfg.trainer.objective == "auto"
    check_config(cfg)


@pytest.mark.parametrize("group", ["optimizer", "scheduler", "data", "model", "trainer", "logger"])
def test_every_group_option_composes_and_validates(group):
    options = group_options(group)
    assert options, f"conf/{group} is empty"
    for option in options:
        extra = ["data.root=/tmp/images"] if option == "imagefolder" else []
        cfg = make_cfg([f"{group}={option}", *extra])
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        if option == "simulated":  # no images: training refuses it, the simulated task runs it
            with pytest.raises(ConfigError, match=r"data\.name.*workload=simulated"):
                check_config(cfg)
            simulated = make_cfg(["workload=simulated", f"{group}={option}"])
            simulate.check(simulated, "adam")
        elif group == "optimizer" and cfg.optimizer._target_.rsplit(".", 1)[-1] in REFUSED:
            with pytest.raises(ConfigError, match=r"optimizer\._target_"):
                check_config(cfg)  # composes, and is refused in one line before any data
        else:
            check_config(cfg)


def test_schemas_hold_types_only_so_each_default_is_written_once_in_yaml():
    import dataclasses

    from omegaconf import MISSING

    from optsweep import config

    schemas = [config.ModelConf, config.DataConf, config.TrainerConf,
               *config.SCHEDULER_SCHEMAS.values(),
               *config.LOGGER_SCHEMAS.values()]
    for schema in schemas:
        for field in dataclasses.fields(schema):
            assert field.default is MISSING, f"{schema.__name__}.{field.name}: write it in YAML"


def test_betas_sweep_one_at_a_time_or_as_a_pair():
    cfg = make_cfg(["optimizer.beta1=0.7"])
    assert (cfg.optimizer.beta1, cfg.optimizer.beta2) == (0.7, 0.999)
    cfg = make_cfg(["optimizer=adamw", "optimizer.beta2=0.8"])
    assert (cfg.optimizer.beta1, cfg.optimizer.beta2) == (0.9, 0.8)
    cfg = make_cfg(["optimizer.betas=[0.5,0.6]"])
    assert list(cfg.optimizer.betas) == [0.5, 0.6]


@pytest.mark.parametrize("override, message", [
    ("optimizer=adamx", "Could not find 'optimizer/adamx'"),
    ("data=mnist", "Could not find 'data/mnist'"),
    ("optimizer.lrr=0.1", "lrr"),
    ("trainer.epocs=3", "epocs"),
    ("data.batch_size=1.5", "data.batch_size"),
])
def test_composition_errors_name_the_key(override, message):
    with pytest.raises(ConfigCompositionException) as info:
        make_cfg([override])
    text = str(info.value) + str(info.value.__cause__)
    assert message in text


@pytest.mark.parametrize("override, key", [
    ("optimizer.lr=-0.1", "optimizer.lr"),
    ("optimizer.lr=abc", "optimizer.lr"),  # the optimizer group has no schema: checked here
    ("optimizer.eps=-1e-8", "optimizer.eps"),
    ("optimizer.weight_decay=-1", "optimizer.weight_decay"),
    ("optimizer.beta1=1.0", "optimizer.beta1"),
    ("optimizer.beta2=-0.1", "optimizer.beta2"),
    ("optimizer.betas=[0.9,1.5]", "optimizer.betas"),
    ("optimizer=muon optimizer.adamw_lr=-1", "optimizer.adamw_lr"),  # Muon has two lrs
    ("optimizer=muon optimizer.adamw_beta2=1.0", "optimizer.adamw_beta2"),
    ("trainer.epochs=0", "trainer.epochs"),
    ("data.batch_size=0", "data.batch_size"),
    ("data.val_fraction=1.0", "data.val_fraction"),
    ("data.val_fraction=-0.1", "data.val_fraction"),
    ("trainer.precision=fp8", "trainer.precision"),
    ("trainer.objective=accuracy", "trainer.objective"),
    ("scheduler.step_per=step", "scheduler.step_per"),
    ("scheduler=warmup_cosine scheduler.warmup_epochs=10", "scheduler.warmup_epochs"),
    ("scheduler=step scheduler.step_size=0", "scheduler.step_size"),
    ("scheduler=plateau scheduler.step_per=batch", "scheduler.step_per"),
    ("scheduler=plateau data.val_fraction=0 trainer.objective=test_acc1", "scheduler"),
])
def test_bad_values_fail_validation_naming_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        check_config(make_cfg(override.split()))
    assert info.value.key == key and str(info.value).startswith(key)


def test_val_objective_without_val_split_is_rejected():
    with pytest.raises(ConfigError, match="trainer.objective"):
        check_config(make_cfg(["data.val_fraction=0", "trainer.objective=val_acc1"]))
