"""Convolutions over tiny feature maps, run as matrix multiplies.

ResNet18 on 32x32 images shrinks its maps to 2x2 in layer3 and 1x1 in layer4. A 3x3 convolution
with padding 1 over a 1x1 map only ever multiplies its centre tap with the input (the other 8 taps
see padding). On a 2-core Xeon with torch 2.14, layer3 and layer4 took over half of a training
step's time (fwd + bwd, batch 128) for a quarter of its useful multiply-adds: oneDNN's kernels are
tuned for larger maps. Written as one matrix multiply over the taps that touch the input, a
convolution with a 1x1 output does only the useful work, in the best-tuned kernel a CPU or GPU
has (GEMM): a ResNet18 training step went from 262 to 216 ms there.

Exact in intent: the same sums, in another order (outputs and gradients agree with ``nn.Conv2d``
to float rounding, tests/test_small_maps.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def is_plain(conv: nn.Conv2d) -> bool:
    """No groups, no dilation, zero padding: the convolutions the lowering below handles."""
    return (conv.groups == 1 and conv.dilation == (1, 1) and conv.padding_mode == "zeros"
            and isinstance(conv.padding, tuple))


class PointOutputConv2d(nn.Conv2d):
    """``nn.Conv2d`` that, when its output is 1x1, runs as ``F.linear`` over the taps that land on
    the input; any larger output goes through ``nn.Conv2d`` unchanged.

    Same parameters and state-dict keys as the ``nn.Conv2d`` it replaces (see
    :func:`lower_point_convs`), so checkpoints and optimizers do not notice.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (h, w), (kh, kw), (ph, pw) = x.shape[-2:], self.kernel_size, self.padding
        if (output_size(h, kh, self.stride[0], ph) != 1
                or output_size(w, kw, self.stride[1], pw) != 1):
            return super().forward(x)
        # the single output sees input rows y with 0 <= y + ph < kh (tap y + ph), likewise columns
        y0, y1, x0, x1 = max(0, -ph), min(h, kh - ph), max(0, -pw), min(w, kw - pw)
        inputs = x[:, :, y0:y1, x0:x1]
        taps = self.weight[:, :, y0 + ph:y1 + ph, x0 + pw:x1 + pw]
        # (row, column, channel) order: a free view of a channels_last input
        out = F.linear(inputs.permute(0, 2, 3, 1).reshape(x.shape[0], -1),
                       taps.permute(0, 2, 3, 1).reshape(taps.shape[0], -1), self.bias)
        return out[:, :, None, None]


def lower_point_convs(model: nn.Module) -> nn.Module:
    """Replace, in place, every plain ``nn.Conv2d`` of ``model`` by a :class:`PointOutputConv2d`
    holding the same parameter objects. Call it before the optimizer is built."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Conv2d and is_plain(child):
                setattr(parent, name, _point_output_copy(child))
    return model


def _point_output_copy(conv: nn.Conv2d) -> PointOutputConv2d:
    new = PointOutputConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                            conv.padding, bias=False, device="meta")
    new.weight, new.bias = conv.weight, conv.bias
    new.train(conv.training)
    return new


def dense_matrix(weight: torch.Tensor, stride: tuple, padding: tuple, h: int,
                 w: int) -> torch.Tensor:
    """The convolution of an ``h`` x ``w`` input as one matrix: ``x_flat @ M`` with ``x_flat`` in
    (row, column, channel) order, the output in the same order. Sizes (h*w*in) x (oh*ow*out): only
    worth it for tiny maps (:mod:`optsweep.inference` uses it for 2x2 and smaller outputs)."""
    cout, cin, kh, kw = weight.shape
    oh, ow = output_size(h, kh, stride[0], padding[0]), output_size(w, kw, stride[1], padding[1])
    m = weight.new_zeros(h, w, cin, oh, ow, cout)
    for i in range(oh):
        for j in range(ow):
            for y in range(h):  # input row y meets output row i through kernel row a
                a = y - i * stride[0] + padding[0]
                for x in range(w):
                    b = x - j * stride[1] + padding[1]
                    if 0 <= a < kh and 0 <= b < kw:
                        m[y, x, :, i, j, :] = weight[:, :, a, b].T
    return m.view(h * w * cin, oh * ow * cout)
