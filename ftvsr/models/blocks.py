"""Convolutional blocks both stages use: mmedit's `ResidualBlockNoBN` and
`ResidualBlocksWithInputConv`, with the same parameter names and initialisation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _kaiming_init_(conv: nn.Module, scale: float) -> None:
    """mmedit's `default_init_weights`: Kaiming normal (fan_in, ReLU gain) times `scale`, zero bias."""
    nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in", nonlinearity="relu")
    with torch.no_grad():
        conv.weight.mul_(scale)
    nn.init.zeros_(conv.bias)


class ResidualBlockNoBN(nn.Module):
    """x + conv(relu(conv(x))), 3x3 convs, no normalisation. (n, c, h, w) -> (n, c, h, w)."""

    def __init__(self, mid_channels: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, 1, 1, bias=True)
        for conv in (self.conv1, self.conv2):
            _kaiming_init_(conv, 0.1)  # small residuals at init, as ESRGAN / mmedit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ResidualBlocksWithInputConv(nn.Module):
    """3x3 conv to `out_channels` + LeakyReLU(0.1), then `num_blocks` residual blocks.

    (n, in_channels, h, w) -> (n, out_channels, h, w). Names: `main.0` (conv), `main.2.<i>`.
    """

    def __init__(self, in_channels: int, out_channels: int = 64, num_blocks: int = 30) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=True),
            nn.LeakyReLU(negative_slope=0.1, inplace=True),
            nn.Sequential(*[ResidualBlockNoBN(out_channels) for _ in range(num_blocks)]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)
