"""A faster forward for evaluation: batch norm folded into the convolutions, tiny maps as GEMMs.

In eval mode a batch norm is a fixed per-channel affine map, so it folds into the convolution
before it (torch's ``fuse_conv_bn_weights``); a convolution whose output is 2x2 or smaller runs as
one matrix multiply (:func:`optsweep.small_maps.dense_matrix`) where that does at most twice its
work. :class:`InferencePlan` is built from the live model at each evaluation, because the weights
change every epoch: about 10 ms for ResNet18 on a 2-core Xeon, against ~400 ms per 1,000 images.
It copies the weights it folds and reads the rest (pooling, fc) from the model as it is.

Exact in intent: logits agree with ``model.eval()`` to float rounding
(tests/test_inference.py states the tolerance). Models other than torchvision's ResNet family
evaluate through their own forward.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from optsweep.small_maps import dense_matrix, is_plain, output_size

# A convolution runs as one matrix multiply when its output has at most 4 pixels (2x2) and the
# matrix does at most twice its multiply-adds (input pixels <= 2 x kernel taps): on a 2-core Xeon
# ResNet18's layer3 (4x4 -> 2x2 -> 2x2) and layer4 evaluated fastest so, the 1x1 downsampling
# convolutions (16x the work as a matrix) and 4x4 outputs (1.8x) slower.
DENSE_MAX_OUTPUT = 4
DENSE_MAX_WORK = 2


class FoldedConv:
    """A convolution with its batch norm folded in; a matrix multiply on tiny maps."""

    def __init__(self, conv: nn.Conv2d, bn: Optional[nn.BatchNorm2d]) -> None:
        weight, bias = conv.weight, conv.bias
        if bn is not None:
            weight, bias = fuse_conv_bn_weights(weight, bias, bn.running_mean, bn.running_var,
                                                bn.eps, bn.weight, bn.bias)
        self.weight = weight.detach()
        self.bias = bias.detach() if bias is not None else torch.zeros_like(weight[:, 0, 0, 0])
        self.conv = conv  # for stride, padding, dilation, groups
        self.dense: dict = {}  # (h, w) -> (matrix, bias repeated per output pixel)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c, (h, w) = self.conv, x.shape[-2:]
        out_size = _dense_output_size(c, h, w)
        if out_size is None:
            return F.conv2d(x, self.weight, self.bias, c.stride, c.padding, c.dilation, c.groups)
        if (h, w) not in self.dense:
            self.dense[h, w] = (dense_matrix(self.weight, c.stride, c.padding, h, w),
                                self.bias.repeat(out_size[0] * out_size[1]))
        matrix, bias = self.dense[h, w]
        flat = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # a view when x is channels_last
        out = torch.addmm(bias, flat, matrix)
        return out.view(x.shape[0], *out_size, -1).permute(0, 3, 1, 2)  # channels_last, no copy


def _dense_output_size(conv: nn.Conv2d, h: int, w: int) -> Optional[tuple]:
    """(oh, ow) where ``conv`` on an h x w input runs faster as one matrix multiply, else None."""
    if not is_plain(conv):
        return None
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    oh, ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    if 0 < oh * ow <= DENSE_MAX_OUTPUT and h * w <= DENSE_MAX_WORK * kh * kw:
        return oh, ow
    return None


class InferencePlan:
    """torchvision ResNet's forward over :class:`FoldedConv` s."""

    def __init__(self, model: ResNet) -> None:
        self.stem = FoldedConv(model.conv1, model.bn1)
        self.maxpool = model.maxpool
        self.blocks = [(_block_convs(block),
                        FoldedConv(*block.downsample) if block.downsample is not None else None)
                       for layer in (model.layer1, model.layer2, model.layer3, model.layer4)
                       for block in layer]
        self.avgpool, self.fc = model.avgpool, model.fc

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.stem(x).relu_())
        for convs, downsample in self.blocks:
            out = x
            for i, conv in enumerate(convs):
                out = conv(out)
                if i < len(convs) - 1:
                    out = out.relu_()
            x = out.add_(downsample(x) if downsample is not None else x).relu_()
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _block_convs(block: nn.Module) -> list:
    pairs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
    if isinstance(block, Bottleneck):
        pairs.append((block.conv3, block.bn3))
    return [FoldedConv(conv, bn) for conv, bn in pairs]


def foldable(model: nn.Module) -> bool:
    """torchvision's ResNet family, built the standard way, with running batch-norm statistics."""
    if type(model) is not ResNet:
        return False
    layers = (model.layer1, model.layer2, model.layer3, model.layer4)
    blocks = [b for layer in layers for b in layer]
    return (all(type(b) in (BasicBlock, Bottleneck) for b in blocks)
            and all(b.downsample is None or len(b.downsample) == 2 for b in blocks)
            and all(m.track_running_stats for m in model.modules()
                    if isinstance(m, nn.BatchNorm2d)))


def inference_forward(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The fastest exact-in-intent forward for evaluating ``model`` as its weights are now."""
    return InferencePlan(model) if foldable(model) else model
