"""Optical flow: SPyNet (Ranjan & Black, CVPR 2017) as mmedit builds it, and flow warping.

FTVSR aligns features with SPyNet flows twice: on the LR clip (for the recurrent propagation
and the trajectories of LTAM) and on the first-stage 4x outputs (for the frequency transformer).
Parameter names follow mmedit (`basic_module.<level>.basic_module.<layer>.conv.weight`), so
OpenMMLab's `spynet_20210409-c6c1bd09.pth` and the released FTVSR checkpoints load unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ftvsr.models.blocks import conv2d
from ftvsr.models.onednn import channels_last

# ImageNet statistics that SPyNet's pretrained weights expect (mmedit's `mean` / `std` buffers).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_LEVELS = 6  # pyramid levels: 1/32 ... 1/1 of the (padded) frame


def flow_warp(
    x: torch.Tensor,
    flow: torch.Tensor,
    interpolation: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = True,
) -> torch.Tensor:
    """Sample `x` at each pixel displaced by `flow`.

    x: (n, c, h, w); flow: (n, h, w, 2) in pixels, last dim = (dx, dy).
    Returns (n, c, h, w). The arithmetic (absolute grid + flow, scaled by max(size - 1, 1))
    is mmedit's, so results match the published code to the last bit.
    """
    if x.shape[-2:] != flow.shape[1:3]:
        raise ValueError(f"flow_warp: feature size {tuple(x.shape[-2:])} != flow size {tuple(flow.shape[1:3])}")
    _, _, h, w = x.shape
    grid_y, grid_x = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    grid = torch.stack((grid_x, grid_y), 2).to(flow.dtype)  # (h, w, 2)
    position = grid + flow
    position_x = 2.0 * position[..., 0] / max(w - 1, 1) - 1.0
    position_y = 2.0 * position[..., 1] / max(h - 1, 1) - 1.0
    normalized = torch.stack((position_x, position_y), dim=3)
    return F.grid_sample(
        x, normalized.to(x.dtype), mode=interpolation, padding_mode=padding_mode, align_corners=align_corners
    )


class ConvModule(nn.Module):
    """A 7x7 conv, optionally followed by ReLU; named like mmcv's ConvModule (`.conv`)."""

    def __init__(self, in_channels: int, out_channels: int, relu: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 7, 1, 3, bias=True)
        self.relu = relu
        # mmcv's ConvModule init: Kaiming normal, fan_out, ReLU gain, zero bias.
        nn.init.kaiming_normal_(self.conv.weight, a=0, mode="fan_out", nonlinearity="relu")
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d(self.conv, x, "relu" if self.relu else None)


class SPyNetBasicModule(nn.Module):
    """One pyramid level: (reference, warped support, upsampled flow) -> flow residual.

    Input (b, 8, h, w) = 3 + 3 + 2 channels; output (b, 2, h, w).
    """

    def __init__(self) -> None:
        super().__init__()
        widths = (8, 32, 64, 32, 16, 2)
        self.basic_module = nn.Sequential(
            *[ConvModule(widths[k], widths[k + 1], relu=k < len(widths) - 2) for k in range(len(widths) - 1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basic_module(channels_last(x))


class SPyNet(nn.Module):
    """SPyNet: coarse-to-fine flow from `ref` to `supp`.

    forward(ref, supp): both (b, 3, h, w) float in [0, 1] (any size; frames are resized to a
    multiple of 32 internally and the flow is resized back). Returns (b, 2, h, w): for each
    pixel of `ref`, the (dx, dy) offset in pixels of its match in `supp`.
    """

    mean: torch.Tensor  # buffers (the ImageNet normalisation)
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.ModuleList([SPyNetBasicModule() for _ in range(NUM_LEVELS)])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def _flow_at_multiple_of_32(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        b, _, h, w = ref.shape
        refs = [(ref - self.mean) / self.std]
        supps = [(supp - self.mean) / self.std]
        for _ in range(NUM_LEVELS - 1):
            refs.append(F.avg_pool2d(refs[-1], kernel_size=2, stride=2, count_include_pad=False))
            supps.append(F.avg_pool2d(supps[-1], kernel_size=2, stride=2, count_include_pad=False))
        refs, supps = refs[::-1], supps[::-1]  # coarse to fine

        flow = refs[0].new_zeros(b, 2, h // 32, w // 32)
        for level in range(NUM_LEVELS):
            if level == 0:
                flow_up = flow
            else:
                flow_up = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            warped = flow_warp(supps[level], flow_up.permute(0, 2, 3, 1), padding_mode="border")
            flow = flow_up + self.basic_module[level](torch.cat([refs[level], warped, flow_up], 1))
        return flow

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        h, w = ref.shape[2:4]
        h_up = h if h % 32 == 0 else 32 * (h // 32 + 1)
        w_up = w if w % 32 == 0 else 32 * (w // 32 + 1)
        ref = F.interpolate(ref, size=(h_up, w_up), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h_up, w_up), mode="bilinear", align_corners=False)
        flow = F.interpolate(self._flow_at_multiple_of_32(ref, supp), size=(h, w), mode="bilinear", align_corners=False)
        # the flow was measured in the resized frame: rescale to pixels of the original
        flow[:, 0, :, :] *= float(w) / float(w_up)
        flow[:, 1, :, :] *= float(h) / float(h_up)
        return flow


def clip_flows(
    spynet: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    frames: torch.Tensor,
    pixels_per_call: int = 4 * 2**20,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flows between neighbouring frames of a clip, both directions, computed once.

    frames: (n, t, 3, h, w), t >= 2. Returns `(to_previous, to_next)`, each (n, t - 1, 2, h, w):
    `to_previous[:, i]` is the flow from frame i + 1 to frame i (used by forward-time
    propagation), `to_next[:, i]` the flow from frame i to frame i + 1 (backward-time).
    The estimator (SPyNet, or `ClassicalFlow` of the same interface) runs on as many frame pairs
    at a time as fit in `pixels_per_call` pixels (at least one), which bounds its memory on long
    clips and large frames (the published code runs all n * (t - 1) pairs in one batch); per
    pair the result is the same.
    """
    n, t, c, h, w = frames.shape
    pairs_per_call = max(1, pixels_per_call // (32 * -(-h // 32) * 32 * -(-w // 32)))
    earlier = frames[:, :-1].reshape(-1, c, h, w)
    later = frames[:, 1:].reshape(-1, c, h, w)
    refs = torch.cat([later, earlier])  # first half: to previous; second half: to next
    supps = torch.cat([earlier, later])
    flows = torch.cat(
        [
            spynet(refs[k : k + pairs_per_call], supps[k : k + pairs_per_call])
            for k in range(0, refs.shape[0], pairs_per_call)
        ]
    )
    to_previous, to_next = flows.view(2, n, t - 1, 2, h, w).unbind(0)
    return to_previous, to_next
