"""Muon follows Keller Jordan's recipe: its groups, its update, its schedule and its resume."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from optsweep.optim import muon
from optsweep.optim.build import build_adapter
from optsweep.optim.check import check_optimizer
from optsweep.optim.muon import Muon, cpu_flags, split_for_muon
from tests.conftest import make_cfg


def conv_net() -> torch.nn.Module:
    """Input conv, two hidden convs (3x3 and 1x1), batch norm, head: ResNet's parts in small."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(6, 6, 1),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 3))


def batch():
    torch.manual_seed(1)
    return torch.randn(8, 3, 5, 5), torch.randint(0, 3, (8,))


def backward(net: torch.nn.Module) -> None:
    x, y = batch()
    net.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(net(x), y).backward()


def muon_cfg(*overrides: str):
    return make_cfg(["optimizer=muon", *overrides]).optimizer


def test_hidden_convs_go_to_muon_and_first_conv_head_biases_norms_to_adamw():
    net = conv_net()
    hidden, rest = split_for_muon(list(net.named_parameters()))
    assert [name for name, _ in hidden] == ["3.weight", "5.weight"]
    assert [name for name, _ in rest] == ["0.weight", "1.weight", "1.bias", "3.bias", "5.bias",
                                          "8.weight", "8.bias"]


def test_first_update_equals_torch_muon_on_the_flattened_filters_and_adamw_on_the_rest():
    net = conv_net()
    reference = copy.deepcopy(net)
    adapter = build_adapter(muon_cfg(), net.named_parameters(), torch.device("cpu"))
    backward(net)
    adapter.optimizer.step()

    backward(reference)
    params = dict(reference.named_parameters())
    matrices = {n: torch.nn.Parameter(params[n].detach().clone().view(params[n].shape[0], -1))
                for n in ("3.weight", "5.weight")}
    for name, matrix in matrices.items():
        matrix.grad = params[name].grad.reshape(matrix.shape)
    # the recipe's values, as conf/optimizer/muon.yaml writes them
    torch.optim.Muon(matrices.values(), lr=0.02, weight_decay=0.01, momentum=0.95,
                     nesterov=True).step()
    rest = [p for n, p in params.items() if n not in matrices]
    torch.optim.AdamW(rest, lr=3e-4, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.01).step()

    for name, ours in net.named_parameters():
        expected = matrices[name].view_as(ours) if name in matrices else params[name]
        torch.testing.assert_close(ours, expected, rtol=0, atol=0, msg=name)
    assert not torch.equal(net[3].weight, conv_net()[3].weight), "the filters did not move"


def test_both_groups_take_their_own_sweepable_hyperparameters():
    net = conv_net()
    optimizer = build_adapter(muon_cfg("optimizer.lr=0.05", "optimizer.adamw_lr=1e-3",
                                       "optimizer.adamw_beta2=0.99"),
                              net.named_parameters(), torch.device("cpu")).optimizer
    muon_group, adamw_group = optimizer.param_groups
    assert (muon_group["lr"], adamw_group["lr"], adamw_group["betas"]) == (0.05, 1e-3, (0.9, 0.99))
    assert {id(p) for p in muon_group["params"]} == {id(net[3].weight), id(net[5].weight)}


def test_an_lr_schedule_scales_both_groups():
    net = conv_net()
    optimizer = build_adapter(muon_cfg(), net.named_parameters(), torch.device("cpu")).optimizer
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.5 ** epoch)
    backward(net)
    optimizer.step()
    schedule.step()
    backward(net)
    optimizer.step()
    assert [g["lr"] for g in optimizer._inner_groups()] == [0.01, 1.5e-4]


def test_a_filter_stored_channels_last_gets_the_same_update_as_a_contiguous_one():
    nets = [conv_net(), conv_net().to(memory_format=torch.channels_last)]
    for net in nets:
        optimizer = Muon(net.named_parameters())
        backward(net)
        optimizer.step()
    assert nets[1][3].weight.is_contiguous(memory_format=torch.channels_last)
    moved = (nets[0][3].weight - conv_net()[3].weight).abs().max()
    # the same update up to bfloat16 rounding in Newton-Schulz (the columns sum in another order)
    assert (nets[0][3].weight - nets[1][3].weight).abs().max() < 0.05 * moved


def test_resumed_from_its_state_dict_it_continues_exactly():
    nets = [conv_net(), conv_net()]
    first = Muon(nets[0].named_parameters())
    for _ in range(2):
        backward(nets[0])
        first.step()
    nets[1].load_state_dict(nets[0].state_dict())
    second = Muon(nets[1].named_parameters())
    second.load_state_dict(copy.deepcopy(first.state_dict()))  # as if read back from disk
    for net, optimizer in zip(nets, (first, second)):
        backward(net)
        optimizer.step()
    for a, b in zip(*(net.parameters() for net in nets)):
        assert torch.equal(a, b)


X86_CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
flags\t\t: fpu sse2 avx2 fma {extra}
bogomips\t: 4890.86
"""


def test_cpu_flags_are_read_from_x86_and_arm_cpuinfo_lines():
    assert cpu_flags(X86_CPUINFO.format(vendor="GenuineIntel", extra="avx512f amx_bf16")) == {
        "fpu", "sse2", "avx2", "fma", "avx512f", "amx_bf16"}
    assert cpu_flags("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n") == {
        "fp", "asimd", "bf16", "i8mm"}
    assert cpu_flags("model name\t: flags in the name: not a flag line\n") == set()


@pytest.mark.parametrize("extra, warned", [
    ("", True), ("avx512f avx512bw", True),  # AVX-512 alone has no bfloat16 multiplies
    ("avx512f avx512_bf16", False), ("amx_bf16 amx_tile", False)])
def test_muon_warns_once_at_the_start_where_the_cpu_has_no_bfloat16_matrix_instructions(
        tmp_path, monkeypatch, caplog, extra, warned):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(X86_CPUINFO.format(vendor="AuthenticAMD", extra=extra))
    monkeypatch.setattr(muon, "CPUINFO", cpuinfo)
    with caplog.at_level(logging.WARNING, logger="optsweep.optim.check"):
        check_optimizer(make_cfg(["optimizer=muon", "trainer.device=cpu"]))
        check_optimizer(make_cfg(["optimizer=adam", "trainer.device=cpu"]))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == warned
    if warned:
        assert "no avx512_bf16, amx_bf16 or bf16" in messages[0] and "bfloat16" in messages[0]


def test_no_muon_warning_off_the_cpu_or_without_a_cpuinfo(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(X86_CPUINFO.format(vendor="AuthenticAMD", extra=""))
    monkeypatch.setattr(muon, "CPUINFO", cpuinfo)
    assert muon.bf16_warning(torch.device("cpu")) is not None
    assert muon.bf16_warning(torch.device("cuda", 0)) is None
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")  # an Arm CPU with BF16
    assert muon.bf16_warning(torch.device("cpu")) is None
    monkeypatch.setattr(muon, "CPUINFO", tmp_path / "missing")
    assert muon.bf16_warning(torch.device("cpu")) is None
