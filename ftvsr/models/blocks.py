"""Convolutional blocks both stages use: mmedit's `ResidualBlockNoBN` and
`ResidualBlocksWithInputConv`, with the same parameter names and initialisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ftvsr.models import winograd
from ftvsr.models.onednn import channels_last


def conv2d(
    conv: torch.nn.Conv2d,
    x: torch.Tensor,
    activation: str | None = None,
    negative_slope: float = 0.0,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """`act(conv(x) + residual)` (residual optional; act None, "relu" or "leaky_relu" with
    `negative_slope`), the convolution on channels-last input.

    Wide 3x3 convolutions on CPU inference run by Winograd's algorithm (`ftvsr.models.winograd`).
    When no autograd graph is recorded the addition and the activation are done in place on
    the convolution's fresh output: the same values, without allocating (and page-faulting)
    two more tensors of the output's size.
    """
    x = channels_last(x)
    out = winograd.conv3x3(conv, x) if winograd.applies(conv, x) else conv(x)
    recording = torch.is_grad_enabled() and (out.requires_grad or (residual is not None and residual.requires_grad))
    in_place = not recording
    if residual is not None:
        out = out.add_(residual) if in_place else out + residual
    if activation == "relu":
        out = F.relu(out, inplace=in_place)
    elif activation == "leaky_relu":
        out = F.leaky_relu(out, negative_slope, inplace=in_place)
    elif activation is not None:
        raise ValueError(f"conv2d: unknown activation {activation!r}")
    return out


def _kaiming_init_(conv: nn.Conv2d, scale: float) -> None:
    """mmedit's `default_init_weights`: Kaiming normal (fan_in, ReLU gain) times `scale`, zero bias."""
    nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in", nonlinearity="relu")
    with torch.no_grad():
        conv.weight.mul_(scale)
    if conv.bias is not None:
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
        return conv2d(self.conv2, conv2d(self.conv1, x, "relu"), residual=x)


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
        conv, activation, blocks = self.main
        assert isinstance(conv, nn.Conv2d) and isinstance(activation, nn.LeakyReLU)  # as built in __init__
        return blocks(conv2d(conv, x, "leaky_relu", activation.negative_slope))
