"""Every optimizer file builds its class with the YAML's values, lowers a tiny network's loss, and
takes the same first step as its library's own class built by hand."""

from __future__ import annotations

import copy
from pathlib import Path

import hydra.utils
import pytest
import torch

from optsweep.conf_tree import conf_dir
from optsweep.optim.build import build_adapter, build_optimizer, optimizer_kwargs, split_own_keys
from tests.conftest import make_cfg

OPTIMIZERS = sorted(p.stem for p in (Path(conf_dir()) / "optimizer").glob("*.yaml"))
REFUSED = {"sparse_adam"}  # sparse gradients only: refused in one line (tests/test_optim_checks.py)
TRAINABLE = [name for name in OPTIMIZERS if name not in REFUSED]
# Hand-built references for these (their class is optsweep's own or needs a protocol):
# tests/test_optim_muon.py and tests/test_optim_schedulefree.py.
ADAPTED = {"muon", "schedulefree_adamw", "schedulefree_sgd", "schedulefree_radam"}
# Learning rates at which 20 full-batch steps visibly move this problem, where the file's own is
# too small for that by design: Adadelta's paper lr is 1.0 (the study's 1e-3 barely moves in 20
# steps); plain SGD, Shampoo without momentum and RAdam (whose first steps are its rectified,
# SGD-like phase) move ~1% at their defaults.
# Lion's lr is by design 3-10x smaller than AdamW's (1e-4), and each step moves every weight by
# exactly lr.
LR_FOR_20_STEPS = {"adadelta": "1.0", "sgd": "0.1", "shampoo": "1e-2", "radam": "1e-2",
                   "schedulefree_radam": "2.5e-2", "lion": "1e-3"}
# Their first step only initialises state, as their papers' algorithms do: ADOPT's second moment
# (Taniguchi et al. 2024, Algorithm 1), SOAP's preconditioner (Vyas et al. 2024).
STEPS_TO_MOVE = {"adopt": 2, "soap": 2}


def tiny_problem():
    """A fixed three-layer net (so Muon has a hidden matrix) on a linearly separable problem."""
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long()
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                              torch.nn.Tanh(), torch.nn.Linear(16, 2))
    return net, x, y


def closure_for(net, x, y, optimizer):
    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        return loss

    return closure


def take_steps(adapter, net, x, y, steps: int) -> None:
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    adapter.train_mode()
    for _ in range(steps):
        adapter.step(closure_for(net, x, y, adapter.optimizer), scaler)
    adapter.eval_mode(net, [])


@pytest.mark.parametrize("name", TRAINABLE)
def test_yaml_values_reach_the_optimizer(name):
    cfg = make_cfg([f"optimizer={name}"]).optimizer
    net, _, _ = tiny_problem()
    optimizer = build_optimizer(cfg, net.named_parameters(), torch.device("cpu"))
    assert type(optimizer).__name__ == cfg._target_.rsplit(".", 1)[1]
    group = optimizer.param_groups[0]
    kwargs, _ = split_own_keys(optimizer_kwargs(cfg), type(optimizer))
    for key, value in kwargs.items():
        if key.startswith("_") or key in ("fused", "foreach") or key not in group:
            continue  # Muon's adamw_* live in its AdamW group: tests/test_optim_muon.py
        if value is None:
            continue  # null: the class's own choice (LBFGS's max_eval becomes 1.25 x max_iter)
        assert group[key] == (tuple(value) if isinstance(value, list) else value) or (
            isinstance(value, list) and list(group[key]) == value), key


@pytest.mark.parametrize("name", TRAINABLE)
def test_tiny_network_loss_goes_down_in_20_steps(name):
    overrides = [f"optimizer={name}"]
    if name in LR_FOR_20_STEPS:
        overrides.append(f"optimizer.lr={LR_FOR_20_STEPS[name]}")
    net, x, y = tiny_problem()
    adapter = build_adapter(make_cfg(overrides).optimizer, net.named_parameters(),
                            torch.device("cpu"))
    first = torch.nn.functional.cross_entropy(net(x), y).item()
    take_steps(adapter, net, x, y, 20)
    last = torch.nn.functional.cross_entropy(net(x), y).item()
    assert last < first * 0.98, f"{name}: loss {first:.4f} -> {last:.4f}"


@pytest.mark.parametrize("name", sorted(set(TRAINABLE) - ADAPTED))
def test_first_update_equals_the_library_class_built_by_hand(name):
    cfg = make_cfg([f"optimizer={name}", "optimizer.lr=0.05"]).optimizer
    net, x, y = tiny_problem()
    reference = copy.deepcopy(net)
    steps = STEPS_TO_MOVE.get(name, 1)
    take_steps(build_adapter(cfg, net.named_parameters(), torch.device("cpu")), net, x, y, steps)

    cls = hydra.utils.get_class(cfg._target_)
    kwargs, _ = split_own_keys(optimizer_kwargs(cfg), cls)
    by_hand = cls(reference.parameters(), **{k: v for k, v in kwargs.items()
                                            if not k.startswith("_")})
    closure = closure_for(reference, x, y, by_hand)
    for _ in range(steps):
        if name == "lbfgs":
            by_hand.step(closure)
        else:
            closure()
            by_hand.step()
    for ours, theirs in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)
    assert not all(torch.equal(a, b) for a, b in zip(net.parameters(), tiny_problem()[0]
                                                        .parameters())), "nothing moved"


def test_betas_come_from_beta1_beta2_or_the_pair():
    net, _, _ = tiny_problem()
    opt = build_optimizer(make_cfg(["optimizer.beta1=0.5"]).optimizer, net.parameters(),
                          torch.device("cpu"))
    assert opt.param_groups[0]["betas"] == (0.5, 0.999)
    opt = build_optimizer(make_cfg(["optimizer.betas=[0.7,0.6]"]).optimizer, net.parameters(),
                          torch.device("cpu"))
    assert opt.param_groups[0]["betas"] == (0.7, 0.6)


def test_no_decay_norm_bias_exempts_biases_and_norm_weights_only():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 2))
    plain = build_optimizer(make_cfg(["optimizer=adamw"]).optimizer, net.named_parameters(),
                            torch.device("cpu"))
    assert [g["weight_decay"] for g in plain.param_groups] == [1e-2]
    split = build_optimizer(make_cfg(["optimizer=adamw", "optimizer.no_decay_norm_bias=true"])
                            .optimizer, net.named_parameters(), torch.device("cpu"))
    decayed, exempt = split.param_groups
    assert (decayed["weight_decay"], exempt["weight_decay"]) == (1e-2, 0.0)
    weights = {id(net[0].weight), id(net[3].weight)}
    assert {id(p) for p in decayed["params"]} == weights
    assert {id(p) for p in exempt["params"]} == {id(p) for p in net.parameters()} - weights


def test_fused_is_chosen_only_where_torch_has_it():
    from optsweep.optim.build import supports_fused

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


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adam"])
def test_step_size_estimators_report_their_estimate(name):
    net, x, y = tiny_problem()
    adapter = build_adapter(make_cfg([f"optimizer={name}"]).optimizer, net.named_parameters(),
                            torch.device("cpu"))
    take_steps(adapter, net, x, y, 5)
    estimate = adapter.extra_metrics()["step_size_estimate"]
    assert estimate == adapter.optimizer.param_groups[0]["d"] > 1e-6  # grew from d0
    plain = build_adapter(make_cfg(["optimizer=adafactor"]).optimizer, net.named_parameters(),
                          torch.device("cpu"))
    assert plain.extra_metrics() == {}  # Adafactor's `d` is a clipping threshold, not an estimate
