"""The evaluation forward (batch norm folded, tiny maps as GEMMs) predicts what model.eval()
does."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from optsweep.inference import InferencePlan, inference_forward
from optsweep.small_maps import lower_point_convs


def with_random_statistics(model: nn.Module) -> nn.Module:
    """Running statistics and affine parameters away from their init (mean 0, var 1, identity),
    so that a wrong fold shows."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(1 + torch.randn(m.num_features, generator=g) * 0.1)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def resnet18():
    torch.manual_seed(0)
    return with_random_statistics(torchvision.models.resnet18(num_classes=100))


# Logits of order 1 (|logit| < 5 here); folding and GEMMs change only the summation order, so they
# agree with the module forward to float32 rounding: max abs difference ~2e-6 measured.
TOL = dict(rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [32, 64, 224])  # 32: dense layer3/layer4; 224: convolutions only
@pytest.mark.parametrize("channels_last", [True, False])
def test_plan_predicts_what_the_model_predicts(size, channels_last):
    model = resnet18()
    x = torch.randn(6, 3, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = model(x)
        plan = inference_forward(model)
        assert isinstance(plan, InferencePlan)
        out = plan(x)
    torch.testing.assert_close(out, expected, **TOL)
    assert torch.equal(out.argmax(1), expected.argmax(1))


def test_plan_of_a_lowered_model_and_of_a_bottleneck_resnet():
    torch.manual_seed(0)
    bottleneck = with_random_statistics(ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10))
    lowered = lower_point_convs(resnet18())
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        for model in (bottleneck, lowered):
            torch.testing.assert_close(inference_forward(model)(x), model(x), **TOL)


def test_plan_follows_the_weights_it_was_built_from():
    model = resnet18()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        before = inference_forward(model)(x)
        model.layer4[1].bn2.bias.add_(1.0)  # an optimizer step changes the weights
        after = inference_forward(model)(x)
        torch.testing.assert_close(after, model(x), **TOL)
    assert not torch.allclose(before, after)


def test_bf16_autocast_plan_agrees_with_the_model_under_autocast():
    model = resnet18()
    x = torch.randn(8, 3, 32, 32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected, out = model(x).float(), inference_forward(model)(x).float()
    # bf16 keeps 8 bits of mantissa: differences of a few 1e-2 on logits of order 1
    torch.testing.assert_close(out, expected, rtol=0.05, atol=0.1)


def test_other_models_evaluate_through_their_own_forward():
    odd = ResNet(BasicBlock, [1, 1, 1, 1])
    odd.layer1[0] = nn.Sequential(odd.layer1[0])  # not a block the plan knows
    no_stats = torchvision.models.resnet18(norm_layer=lambda c: nn.BatchNorm2d(
        c, track_running_stats=False))
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    for model in (odd, no_stats, mlp):
        assert inference_forward(model) is model
