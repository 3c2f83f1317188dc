"""Convolutions on tiny maps as matrix multiplies: the same outputs and gradients as nn.Conv2d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from optsweep.small_maps import PointOutputConv2d, dense_matrix, lower_point_convs

# (in, out, kernel, stride, padding, input size): every case's output is 1x1
POINT_OUTPUT_CASES = [
    (8, 6, 3, 1, 1, 1),  # layer4's 3x3 convolutions: only the centre tap sees the input
    (8, 6, 3, 2, 1, 2),  # layer4's first convolution: 2x2 -> 1x1, taps (1..2, 1..2)
    (8, 6, 1, 2, 0, 2),  # layer4's downsampling: the input's top-left pixel only
    (4, 5, 3, 1, 0, 3),  # no padding: every tap
    (4, 5, 7, 2, 3, 1),  # a 7x7 stem on a 1x1 image
]


def conv_pair(cin, cout, k, s, p, bias=True):
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, s, p, bias=bias)
    point = lower_point_convs(nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=bias)))[0]
    point.load_state_dict(conv.state_dict())
    return conv, point


@pytest.mark.parametrize("cin,cout,k,s,p,size", POINT_OUTPUT_CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_point_output_conv_matches_conv2d_forward_and_backward(cin, cout, k, s, p, size,
                                                                channels_last):
    conv, point = conv_pair(cin, cout, k, s, p)
    x = torch.randn(5, cin, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = conv(xa), point(xb)
    assert yb.shape == ya.shape == (5, cout, 1, 1)
    torch.testing.assert_close(yb, ya, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(point.weight.grad, conv.weight.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(point.bias.grad, conv.bias.grad, rtol=1e-5, atol=1e-6)


def test_taps_that_never_touch_the_input_get_a_zero_gradient():
    conv, point = conv_pair(4, 4, 3, 1, 1, bias=False)
    point(torch.randn(3, 4, 1, 1)).sum().backward()
    grad = point.weight.grad
    assert grad[:, :, 1, 1].abs().sum() > 0
    grad[:, :, 1, 1] = 0
    assert torch.count_nonzero(grad) == 0


def test_larger_outputs_go_through_conv2d_unchanged():
    conv, point = conv_pair(3, 4, 3, 1, 1)
    x = torch.randn(2, 3, 6, 6)
    assert torch.equal(point(x), conv(x))


def test_lowering_keeps_parameters_state_dict_and_outputs():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    params, keys = list(model.parameters()), list(model.state_dict())
    plain = torchvision.models.resnet18(num_classes=10)
    plain.load_state_dict(model.state_dict())
    lower_point_convs(model)
    assert all(a is b for a, b in zip(model.parameters(), params))  # an optimizer keeps working
    assert list(model.state_dict()) == keys  # checkpoints load either way
    assert type(model.layer4[1].conv2) is PointOutputConv2d
    assert type(model.layer4[0].downsample[0]) is PointOutputConv2d
    x = torch.randn(4, 3, 32, 32)  # layer4 sees 1x1 maps: the lowering is in use
    torch.testing.assert_close(model(x), plain(x), rtol=1e-4, atol=1e-5)


def test_grouped_and_dilated_convolutions_are_left_alone():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 4, 3, dilation=2),
                          nn.Conv2d(4, 4, 3))
    lower_point_convs(model)
    assert [type(m) for m in model] == [nn.Conv2d, nn.Conv2d, PointOutputConv2d]


@pytest.mark.parametrize("cin,cout,k,s,p,size", [
    (3, 4, 3, 1, 1, 2),  # layer3's 2x2 -> 2x2
    (3, 4, 3, 2, 1, 4),  # layer3's first: 4x4 -> 2x2
    (3, 4, 1, 2, 0, 4),  # its downsampling
    *POINT_OUTPUT_CASES,
])
def test_dense_matrix_is_the_convolution(cin, cout, k, s, p, size):
    torch.manual_seed(0)
    weight, x = torch.randn(cout, cin, k, k), torch.randn(3, cin, size, size)
    expected = F.conv2d(x, weight, stride=s, padding=p)
    matrix = dense_matrix(weight, (s, s), (p, p), size, size)
    out = x.permute(0, 2, 3, 1).reshape(3, -1) @ matrix  # (row, column, channel) order
    oh = expected.shape[-1]
    torch.testing.assert_close(out.view(3, oh, oh, cout).permute(0, 3, 1, 2), expected,
                               rtol=1e-5, atol=1e-5)
