"""The DeFA-style regressor: a small plain CNN on a 128x128 crop (our architecture, documented
here).

DeFA (Liu et al., ICCVW 2017) regresses a weak-perspective camera and 3DMM coefficients with a
CNN; its exact network is not part of what this project reproduces, so we use a plain VGG-like
design of about the size of 3DDFA's MobileNet-V1:

* stem: 3x3 conv, stride 2, ``w`` channels (128 -> 64);
* four stages, each a 3x3 conv (stride 1) and a 3x3 conv (stride 2) with ``c`` channels,
  c = 2w, 4w, 8w, 8w (64 -> 32 -> 16 -> 8 -> 4);
* every conv without bias, followed by BN and ReLU;
* head: flatten the (8w, 4, 4) map (the position of the face matters for the camera, so no global
  pooling), a fully connected layer to 256 with ReLU, and a linear layer to ``num_outputs``
  (236 whitened DeFA parameters), zero-initialised (the untrained network predicts the mean).

Parameters: 3.45 M at w = 32 (this project's paper configuration, about MobileNet-V1's 3.27 M),
0.78 M at w = 12 (the default CPU run; MobileNet-V1 at width 0.5: 0.85 M). Input (B, 3, S, S) float
normalised to [-1, 1], S a multiple of 32 (the head's input size follows S).
"""

from __future__ import annotations

import torch
from torch import nn

STAGE_MULTIPLES: tuple[int, ...] = (2, 4, 8, 8)
HIDDEN = 256


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DeFANet(nn.Module):
    """See the module docstring. ``width`` = w, ``in_size`` = S (input side, multiple of 32)."""

    def __init__(self, num_outputs: int = 236, width: int = 32, in_size: int = 128):
        super().__init__()
        if in_size % 32 or width < 1:
            raise ValueError(
                f"in_size must be a multiple of 32 and width positive, got {in_size}, {width}"
            )
        self.width, self.in_size, self.num_outputs = int(width), int(in_size), int(num_outputs)
        layers: list[nn.Module] = [_conv(3, width, 2)]
        cin = width
        for mult in STAGE_MULTIPLES:
            c = mult * width
            layers += [_conv(cin, c, 1), _conv(c, c, 2)]
            cin = c
        self.features = nn.Sequential(*layers)
        side = in_size // 32
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cin * side * side, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(HIDDEN, num_outputs),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        last = self.head[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


__all__ = ["DeFANet"]
