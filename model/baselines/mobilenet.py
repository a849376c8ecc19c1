"""MobileNet-V1 (Howard et al. 2017, arXiv 1704.04861), the backbone of 3DDFA's public PyTorch code.

Input (B, 3, H, W) float (the baseline feeds 120x120 crops normalised to [-1, 1]); output
(B, num_outputs) linear (62 whitened 3DDFA parameters).

Layers at width multiplier ``alpha`` (channels ``int(c * alpha)``, at least 1):

* 3x3 conv, stride 2, 32 channels, BN, ReLU;
* 13 depthwise-separable blocks (3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN +
  ReLU) with output channels / strides 64/1, 128/2, 128/1, 256/2, 256/1, 512/2, 5 x 512/1,
  1024/2, 1024/1 (the paper's table 1; the last depthwise conv has stride 1 as in every
  implementation, so 224 -> 7x7 and 120 -> 4x4);
* global average pooling, one fully connected layer (with bias) to ``num_outputs``.

Convolutions have no bias (BN follows). Parameter count at alpha = 1: 4,231,976 with 1,000 ImageNet
classes (the paper's 4.2 M); with 62 outputs 3,270,526 (:func:`count_parameters`). The final layer
is zero-initialised here, so an untrained network predicts whitened zeros = the training-set mean
parameters (3DDFA initialises it randomly; zero is a better start for short runs).
"""

from __future__ import annotations

import torch
from torch import nn

# (output channels, stride) of the 13 depthwise-separable blocks
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
STEM_CHANNELS = 32


def scaled(channels: int, alpha: float) -> int:
    """``int(channels * alpha)``, at least 1."""
    return max(1, int(channels * alpha))


def _conv_bn(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise conv (stride s) + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__(_conv_bn(cin, cin, 3, stride, groups=cin), _conv_bn(cin, cout, 1, 1))


class MobileNetV1(nn.Module):
    """MobileNet-V1 regressor; see the module docstring. ``alpha`` = width multiplier."""

    def __init__(self, num_outputs: int = 62, alpha: float = 1.0, in_channels: int = 3):
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"width multiplier must be positive, got {alpha}")
        self.alpha, self.num_outputs = float(alpha), int(num_outputs)
        layers: list[nn.Module] = [_conv_bn(in_channels, scaled(STEM_CHANNELS, alpha), 3, 2)]
        cin = scaled(STEM_CHANNELS, alpha)
        for cout, stride in BLOCKS:
            layers.append(DepthwiseSeparable(cin, scaled(cout, alpha), stride))
            cin = scaled(cout, alpha)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_outputs)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (batch-norm scale and shift included, running stats not)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MobileNetV1", "DepthwiseSeparable", "count_parameters", "BLOCKS"]
