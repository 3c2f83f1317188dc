"""What cannot work is one line before any data is read; what the authors advise against warns."""

from __future__ import annotations

import logging
import sys

import pytest
import torch
from omegaconf import OmegaConf

from optsweep.errors import ConfigError
from optsweep.imports import importable
from optsweep.optim.build import build_adapter
from optsweep.optim.check import check_optimizer
from optsweep.sweep import preflight
from optsweep.train import train
from tests.conftest import QUICK, make_cfg

NO_DATA = [*QUICK, "data=cifar10", "data.root=/nonexistent", "data.download=false"]


class OwnSGD(torch.optim.SGD):
    """A user's own class that forwards everything to its parent, as many collections do."""

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)


def one_line_error(overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as caught:
        check_optimizer(make_cfg(overrides))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_an_unknown_key_fails_before_any_data_naming_it_and_the_arguments(tmp_path, no_network):
    with pytest.raises(ConfigError, match=r"optimizer\.momentun=0\.9 .*SGD takes .*momentum"):
        train(make_cfg([*NO_DATA, "optimizer=sgd", "+optimizer.momentun=0.9"]), tmp_path)


def test_an_unknown_key_is_refused_also_by_a_class_that_takes_any_keyword():
    message = one_line_error(["optimizer=adopt", "+optimizer.lrr=5"])
    assert message.startswith("optimizer.lrr=5 is invalid") and "ADOPT takes" in message
    assert "lr, " in message and "beta1" in message


def test_a_target_that_is_not_an_optimizer_class_is_one_line():
    message = one_line_error(["optimizer._target_=torch.nn.Linear"])
    assert "torch.optim.Optimizer subclass" in message


@pytest.mark.parametrize("name, expected", [
    ("json", True), ("json.decoder", True), ("json.no_such_module", False),
    ("no_such_package_x", False), ("no_such_package_x.sub", False), ("", False)])
def test_importable_answers_for_any_name(name, expected):
    assert importable(name) is expected


def test_importable_does_not_import_the_module(monkeypatch):
    monkeypatch.delitem(sys.modules, "json.tool", raising=False)
    assert importable("json.tool") and "json.tool" not in sys.modules


def test_a_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "schedulefree", None)  # import raises ModuleNotFoundError
    message = one_line_error(["optimizer=schedulefree_adamw"])
    assert "schedulefree is not installed" in message
    assert "pip install 'optsweep[optimizers]'" in message


def test_a_sweep_over_optimizers_says_a_missing_package_once_before_launching(monkeypatch):
    monkeypatch.setitem(sys.modules, "prodigyopt", None)
    config = OmegaConf.to_container(make_cfg(["data=digits", "model.weights=null"]))
    config["hydra"] = {"overrides": {"task": ["optimizer=adam,prodigy"]}}
    problem = preflight.shared_problem(OmegaConf.create(config))
    assert problem and "optimizer=prodigy" in problem and "optsweep[optimizers]" in problem
    config["hydra"] = {"overrides": {"task": ["optimizer=adam,sgd"]}}
    assert preflight.shared_problem(OmegaConf.create(config)) is None


@pytest.mark.parametrize("overrides, reason", [
    (["optimizer=sparse_adam"], "only sparse gradients"),
    (["optimizer=schedulefree_adamw", "optimizer._target_=schedulefree.AdamWScheduleFreeClosure"],
     "closure variant has no eval mode"),
    (["optimizer=lbfgs", "trainer.precision=fp16"], "GradScaler cannot scale"),
    (["optimizer=muon", "optimizer.adjust_lr_fn=bogus"], "not supported"),  # torch's own check
])
def test_what_cannot_train_here_is_refused_in_one_line(overrides, reason):
    assert reason in one_line_error(overrides)


def test_advice_against_is_a_warning_not_an_error(caplog):
    with caplog.at_level(logging.WARNING, logger="optsweep.optim.check"):
        check_optimizer(make_cfg(["optimizer=schedulefree_adamw", "scheduler=cosine"]))
        check_optimizer(make_cfg(["optimizer=prodigy", "optimizer.lr=0.5"]))
        check_optimizer(make_cfg(["optimizer=prodigy"]))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "advise scheduler=none" in messages[0] and "optimizer.lr=1.0" in messages[1]


def test_a_users_own_class_works_without_touching_optsweep():
    target = f"optimizer._target_={__name__}.OwnSGD"
    check_optimizer(make_cfg(["optimizer=sgd", target]))
    net = torch.nn.Linear(2, 1)
    adapter = build_adapter(make_cfg(["optimizer=sgd", target, "optimizer.momentum=0.5"])
                            .optimizer, net.named_parameters(), torch.device("cpu"))
    assert type(adapter.optimizer) is OwnSGD
    assert adapter.optimizer.param_groups[0]["momentum"] == 0.5
    # its parent's named arguments are the ones it is checked against
    assert "OwnSGD takes" in one_line_error(["optimizer=sgd", target, "+optimizer.lrr=1"])


def test_alpha_is_a_decay_rate_for_rmsprop_but_an_exponent_for_asgd():
    from optsweep.config import validate

    validate(make_cfg(["optimizer=asgd", "optimizer.alpha=1.0"]))  # eta_t ~ t^-alpha
    with pytest.raises(ConfigError, match="optimizer.alpha"):
        validate(make_cfg(["optimizer=rmsprop", "optimizer.alpha=1.0"]))
