"""Each optimizer file builds its torch class with the YAML's values and trains a tiny network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from optsweep.conf_tree import conf_dir
from optsweep.optim import build_optimizer, optimizer_kwargs
from tests.conftest import make_cfg

OPTIMIZERS = sorted(p.stem for p in (Path(conf_dir()) / "optimizer").glob("*.yaml"))
# Adadelta's update is ~lr * (RMS of past steps / RMS of grads): at lr 1e-3 it barely moves in 20
# steps, which is the algorithm, not a bug; its paper's lr is 1.0. Plain SGD at 1e-3 likewise moves
# ~0.4% in 20 steps on this problem; 0.1 is its usual scale.
LR_FOR_20_STEPS = {"adadelta": "1.0", "sgd": "0.1"}


def tiny_problem():
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long()
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    return net, x, y


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_yaml_values_reach_the_torch_optimizer(name):
    cfg = make_cfg([f"optimizer={name}"]).optimizer
    net, _, _ = tiny_problem()
    optimizer = build_optimizer(cfg, net.parameters(), torch.device("cpu"))
    assert type(optimizer).__name__ == cfg._target_.rsplit(".", 1)[1]
    group = optimizer.param_groups[0]
    for key, value in optimizer_kwargs(cfg).items():
        if key.startswith("_") or key in ("fused", "foreach"):
            continue
        assert group[key] == (tuple(value) if isinstance(value, list) else value), key


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_tiny_network_loss_goes_down_in_20_steps(name):
    overrides = [f"optimizer={name}"]
    if name in LR_FOR_20_STEPS:
        overrides.append(f"optimizer.lr={LR_FOR_20_STEPS[name]}")
    cfg = make_cfg(overrides).optimizer
    net, x, y = tiny_problem()
    optimizer = build_optimizer(cfg, net.parameters(), torch.device("cpu"))
    loss_fn = torch.nn.CrossEntropyLoss()
    first = loss_fn(net(x), y).item()
    for _ in range(20):
        optimizer.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()
    assert loss_fn(net(x), y).item() < first * 0.98, f"{name} did not lower the loss"


def test_betas_come_from_beta1_beta2_or_the_pair():
    net, _, _ = tiny_problem()
    opt = build_optimizer(make_cfg(["optimizer.beta1=0.5"]).optimizer, net.parameters(),
                          torch.device("cpu"))
    assert opt.param_groups[0]["betas"] == (0.5, 0.999)
    opt = build_optimizer(make_cfg(["optimizer.betas=[0.7,0.6]"]).optimizer, net.parameters(),
                          torch.device("cpu"))
    assert opt.param_groups[0]["betas"] == (0.7, 0.6)


def test_fused_is_chosen_only_where_torch_has_it():
    from optsweep.optim import supports_fused

    net, _, _ = tiny_problem()
    adam = build_optimizer(make_cfg(["optimizer=adam"]).optimizer, net.parameters(),
                           torch.device("cpu"))
    assert adam.param_groups[0]["fused"] is supports_fused(torch.optim.Adam, torch.device("cpu"))
    rmsprop = build_optimizer(make_cfg(["optimizer=rmsprop"]).optimizer, net.parameters(),
                              torch.device("cpu"))
    assert "fused" not in rmsprop.param_groups[0] or not rmsprop.param_groups[0]["fused"]
    explicit = build_optimizer(make_cfg(["optimizer.fused=false"]).optimizer, net.parameters(),
                               torch.device("cpu"))
    assert explicit.param_groups[0]["fused"] is False
