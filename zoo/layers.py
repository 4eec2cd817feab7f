"""Building blocks of the progressive-GAN / StyleGAN family (Karras et al. 2018, 2019).

* Equalised learning rate: weights are stored as N(0, 1) (divided by ``lr_mul``) and scaled
  by He's constant ``gain / sqrt(fan_in)`` (times ``lr_mul``) at every forward pass, so Adam's
  per-parameter step size means the same relative change for every layer, whatever its
  fan-in. ``lr_mul`` < 1 slows a layer down (StyleGAN's mapping network uses 0.01).
* Pixelwise feature normalisation: every feature vector to unit mean square.
* Minibatch standard deviation: the discriminator sees how varied a small group of images
  is, which penalises a generator that collapses to a few modes.

Every block traces to ONNX with a dynamic batch axis (no Python ints taken from shapes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


class EqualLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, gain: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.scale = gain * lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.scale, bias)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul:g}"


class EqualConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 gain: float = SQRT2, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = gain * lr_mul / math.sqrt(in_channels * kernel_size * kernel_size)
        self.lr_mul = lr_mul
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        return F.conv2d(x, self.weight * self.scale, bias, padding=self.padding)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, kernel_size={k}"


class PixelNorm(nn.Module):
    """x / sqrt(mean(x^2 over features) + eps), along dim 1."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


class MinibatchStdDev(nn.Module):
    """Append one feature map: the std of each feature over a group of images, averaged.

    Groups are images ``i, i + M, i + 2M, ...`` (M = batch / group size) as in the paper; the
    group size shrinks to the largest divisor of the batch not above ``group_size``.
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = min(self.group_size, b)
        while b % g:
            g -= 1
        y = x.view(g, -1, c, h, w)
        y = (y - y.mean(dim=0)).pow(2).mean(dim=0).add(1e-8).sqrt()  # [M, C, H, W]
        y = y.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1).repeat(g, 1, h, w)  # [B, 1, H, W]
        return torch.cat([x, y], dim=1)
