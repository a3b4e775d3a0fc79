"""FTVSR (Qiu et al., ECCV 2022): the network assembled.

Two stages, both bidirectional and recurrent over the clip:

1. A TTVSR-style first stage on LR features: backward-time then forward-time propagation
   along SPyNet flows, each step refined by LTAM with the keyframe buffers of its direction;
   both directions fused and upsampled 4x by pixel shuffle, plus the upsampled LR frame.
2. The frequency transformer (FTT) refines that 4x output in the DCT domain, with flows
   computed by SPyNet on the first-stage output itself (as the published code does).

Constructor defaults are the published configuration (45.8 M parameters); state dict names
equal those of the released `FTVSR_*.pth` generators for every size.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ftvsr.errors import FTVSRError
from ftvsr.models import winograd
from ftvsr.models.blocks import ResidualBlocksWithInputConv, conv2d
from ftvsr.models.classical_flow import ClassicalFlow
from ftvsr.models.ftt import ATTENTION_MODES, ATTENTION_PATCH, FREQUENCY_GROUPS, FTT
from ftvsr.models.ltam import LTAM, KeyframeBuffers
from ftvsr.models.onednn import conv1x1
from ftvsr.models.resample import lanczos_upsample
from ftvsr.models.spynet import SPyNet, clip_flows, flow_warp

SCALE = 4
FLOW_MODES = ("spynet", "zero", "classical")
BASE_UPSAMPLE_MODES = ("bilinear", "bicubic", "lanczos")
HR_CHANNELS = 64  # published: the 4x head works at 64 channels whatever mid_channels is


class PixelShufflePack(nn.Module):
    """Conv to out_channels * scale^2, then pixel shuffle: (n, c, h, w) -> (n, out, h * s, w * s)."""

    def __init__(self, in_channels: int, out_channels: int, scale_factor: int, upsample_kernel: int = 3) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.upsample_conv = nn.Conv2d(
            in_channels, out_channels * scale_factor**2, upsample_kernel, padding=(upsample_kernel - 1) // 2
        )
        nn.init.kaiming_normal_(self.upsample_conv.weight, a=0, mode="fan_in", nonlinearity="relu")  # mmedit
        if self.upsample_conv.bias is not None:
            nn.init.zeros_(self.upsample_conv.bias)

    def forward(self, x: torch.Tensor, negative_slope: float | None = None) -> torch.Tensor:
        """With `negative_slope`, also a LeakyReLU (applied before the shuffle, which only moves values)."""
        activation = None if negative_slope is None else "leaky_relu"
        return F.pixel_shuffle(conv2d(self.upsample_conv, x, activation, negative_slope or 0.0), self.scale_factor)


def pad_to_multiple(frames: torch.Tensor, k: int) -> tuple[torch.Tensor, int, int]:
    """Pad (n, t, c, H, W) at the bottom / right to multiples of k, as the published code does.

    Returns (padded, pad_h, pad_w). The published padding is zeros except one block: the
    bottom-right pad_h x pad_w corner copies the image's last pad_h rows x pad_w columns (when
    only one side is padded, that strip copies the last rows / columns). Reproduced as is,
    since the frequency transformer normalises over the whole padded frame.
    """
    n, t, c, h, w = frames.shape
    pad_h, pad_w = (-h) % k, (-w) % k
    if pad_h == 0 and pad_w == 0:
        return frames, 0, 0
    padded = frames.new_zeros(n, t, c, h + pad_h, w + pad_w)
    padded[..., :h, :w] = frames
    # (a zero pad on one side makes the published slice `-0:` select that whole side)
    rows, source_rows = (slice(h, h + pad_h), slice(h - pad_h, h)) if pad_h else (slice(0, h), slice(0, h))
    cols, source_cols = (slice(w, w + pad_w), slice(w - pad_w, w)) if pad_w else (slice(0, w), slice(0, w))
    padded[..., rows, cols] = frames[..., source_rows, source_cols]
    return padded, pad_h, pad_w


class FTVSR(nn.Module):
    """FTVSR: 4x video super-resolution for compressed video.

    forward(lrs): (n, t, 3, h, w) float in [0, 1], h and w at least `min_size`
    -> (n, t, 3, 4h, 4w) float (not clamped).

    Args:
        mid_channels: feature width of the first stage (LTAM and propagation).
        num_blocks: residual blocks of the first stage's propagation.
        stride: LTAM patch size in LR pixels.
        keyframe_stride: every keyframe_stride-th frame is stored for LTAM.
        dct_kernel: DCT block size (square), in 4x pixels.
        d_model, n_heads: frequency attention width and heads.
        ftt_channels: feature width of the frequency transformer (a multiple of 64).
        hr_channels: feature width of the head at 4x resolution: `upsample2`'s output, `conv_hr`,
            `conv_last`'s input (published: 64 whatever mid_channels is). These layers take about
            half of a small model's training step.
        hf_once: add the first-stage image once instead of the published twice (fresh training).
        zero_init_heads: zero the residual heads (`conv_last`, `FTT.conv_layer2`): with
            hf_once=True the untrained network outputs exactly the upsampled base.
        flow: "spynet", "zero" (no flow call, zero motion) or "classical" (a parameter-free
            Horn-Schunck flow, `ClassicalFlow`, in SPyNet's place; the SPyNet weights stay in
            the state dict, unused, so checkpoints keep one layout).
        base_upsample: "bilinear" (published), "bicubic" or "lanczos" (a = 3, Pillow's weights:
            `ftvsr.models.resample`) for the upsampled base frame.
        attention: "sdpa" or "materialized" (the published L x L attention matrix; a reference).
    """

    def __init__(
        self,
        mid_channels: int = 64,
        num_blocks: int = 60,
        stride: int = 4,
        keyframe_stride: int = 3,
        dct_kernel: tuple[int, int] = (8, 8),
        d_model: int = 512,
        n_heads: int = 4,
        ftt_channels: int = 512,
        *,
        hr_channels: int = HR_CHANNELS,
        hf_once: bool = False,
        zero_init_heads: bool = False,
        flow: str = "spynet",
        base_upsample: str = "bilinear",
        attention: str = "sdpa",
    ) -> None:
        super().__init__()
        kernel = tuple(int(k) for k in dct_kernel)
        _check_config(
            mid_channels,
            num_blocks,
            stride,
            keyframe_stride,
            kernel,
            d_model,
            n_heads,
            ftt_channels,
            hr_channels,
            flow,
            base_upsample,
            attention,
        )
        dct_kernel = (kernel[0], kernel[1])  # checked: a square (k, k)
        self._config = dict(
            mid_channels=mid_channels,
            num_blocks=num_blocks,
            stride=stride,
            keyframe_stride=keyframe_stride,
            dct_kernel=list(dct_kernel),
            d_model=d_model,
            n_heads=n_heads,
            ftt_channels=ftt_channels,
            hr_channels=hr_channels,
            hf_once=hf_once,
            zero_init_heads=zero_init_heads,
            flow=flow,
            base_upsample=base_upsample,
            attention=attention,
        )
        self.mid_channels = mid_channels
        self.stride = stride
        self.keyframe_stride = keyframe_stride
        self.dct_k = dct_kernel[0]
        self.flow = flow
        self.base_upsample = base_upsample

        # attribute order = published state dict order
        self.spynet = SPyNet()
        self.classical_flow = ClassicalFlow() if flow == "classical" else None  # no parameters, no state
        self.feat_extractor = ResidualBlocksWithInputConv(3, mid_channels, 5)
        self.LTAM = LTAM(mid_channels, stride)
        self.resblocks = ResidualBlocksWithInputConv(2 * mid_channels, mid_channels, num_blocks)
        self.fusion = nn.Conv2d(3 * mid_channels, mid_channels, 1, 1, 0, bias=True)
        self.upsample1 = PixelShufflePack(mid_channels, mid_channels, 2, upsample_kernel=3)
        self.upsample2 = PixelShufflePack(mid_channels, hr_channels, 2, upsample_kernel=3)
        self.conv_hr = nn.Conv2d(hr_channels, hr_channels, 3, 1, 1)
        self.conv_last = nn.Conv2d(hr_channels, 3, 3, 1, 1)
        self.FTT = FTT(dct_kernel, d_model, n_heads, ftt_channels, hf_once=hf_once, attention=attention)

        if zero_init_heads:
            for head in (self.conv_last, self.FTT.conv_layer2):
                nn.init.zeros_(head.weight)
                if head.bias is not None:
                    nn.init.zeros_(head.bias)

    # ------------------------------------------------------------ properties

    @property
    def config(self) -> dict:
        """The constructor arguments (JSON-serialisable): `FTVSR(**model.config)` rebuilds the architecture."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self._config.items()}

    @property
    def attention(self) -> str:
        return self.FTT.ftta.attention

    @attention.setter
    def attention(self, mode: str) -> None:
        if mode not in ATTENTION_MODES:
            raise FTVSRError(f"attention must be one of {ATTENTION_MODES}, got {mode!r}")
        self.FTT.ftta.attention = mode
        self._config["attention"] = mode

    @property
    def min_size(self) -> int:
        """Smallest LR height / width: the frequency attention needs 8 x 8 DCT blocks after padding."""
        k = self.dct_k
        by_attention = (ATTENTION_PATCH - 1) * k // SCALE + 1  # ceil(4 h / k) >= 8
        return max(by_attention, self.stride)

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu") -> FTVSR:
        """Build the model saved by `ftvsr.models.save_model` at `path` (config + weights)."""
        from ftvsr.models.checkpoint import load_model

        return load_model(path, map_location=map_location)

    # ------------------------------------------------------------ forward

    def check_input(self, lrs: torch.Tensor) -> None:
        """Raise FTVSRError unless lrs is a float (n, t, 3, h, w) clip of at least min_size pixels."""
        if not isinstance(lrs, torch.Tensor) or lrs.ndim != 5:
            shape = tuple(lrs.shape) if isinstance(lrs, torch.Tensor) else type(lrs).__name__
            raise FTVSRError(f"FTVSR expects an LR clip of shape (n, t, 3, h, w), got {shape}")
        n, t, c, h, w = lrs.shape
        if c != 3:
            raise FTVSRError(
                f"FTVSR expects 3 (RGB) channels in dim 2 of (n, t, c, h, w), got shape {tuple(lrs.shape)}"
            )
        if n < 1 or t < 1:
            raise FTVSRError(f"FTVSR got an empty clip of shape {tuple(lrs.shape)}")
        if not lrs.is_floating_point():
            raise FTVSRError(f"FTVSR expects float frames in [0, 1], got dtype {lrs.dtype}")
        if min(h, w) < self.min_size:
            raise FTVSRError(
                f"LR frames of {h}x{w} are too small for FTVSR: height and width must be at least "
                f"{self.min_size} pixels"
            )

    def _propagate(self, feats: list[torch.Tensor], flows: torch.Tensor | None, backward: bool) -> list[torch.Tensor]:
        """One direction of first-stage propagation.

        feats: per-frame features (n, c, h, w); flows: (n, t - 1, 2, h, w) towards the previously
        visited frame (to_next for backward time, to_previous for forward time) or None.
        Returns the propagated feature of every frame, in frame order.
        """
        t = len(feats)
        n, _, h, w = feats[0].shape
        if backward:
            order, keyframes = range(t - 1, -1, -1), set(range(t - 1, 0, -self.keyframe_stride))
        else:
            order, keyframes = range(t), set(range(0, t, self.keyframe_stride))
        buffers = KeyframeBuffers(n, h, w, self.stride, feats[0].device)
        out: list[torch.Tensor] = []  # in the order visited
        prop = feats[0].new_zeros(n, self.mid_channels, h, w)
        for step, i in enumerate(order):
            if step > 0:
                if flows is not None:
                    flow = flows[:, i] if backward else flows[:, i - 1]
                    prop = flow_warp(prop, flow.permute(0, 2, 3, 1), padding_mode="border")
                    buffers.follow_flow(flow)
                prop = self.LTAM(feats[i], prop, buffers)
            prop = self.resblocks(torch.cat([feats[i], prop], dim=1))
            out.append(prop)
            if i in keyframes:
                buffers.add(prop, feats[i])
        return out[::-1] if backward else out

    def _first_stage(
        self, lrs: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """LR clip -> (upsampled base, first-stage 4x output), each (n, t, 3, 4h, 4w)."""
        n, t, c, h, w = lrs.shape
        feats = list(self.feat_extractor(lrs.reshape(-1, c, h, w)).view(n, t, -1, h, w).unbind(1))
        to_previous, to_next = flows if flows is not None else (None, None)
        # last frame first: each frame's propagated features are popped, so freed as soon as they are fused
        backward = self._propagate(feats, to_next, backward=True)[::-1]
        forward = self._propagate(feats, to_previous, backward=False)[::-1]
        bases, outputs = [], []
        for i in range(t):
            x = F.leaky_relu(conv1x1(self.fusion, torch.cat([backward.pop(), feats[i], forward.pop()], dim=1)), 0.1)
            x = self.upsample1(x, negative_slope=0.1)
            x = self.upsample2(x, negative_slope=0.1)
            x = conv2d(self.conv_hr, x, "leaky_relu", 0.1)
            base = self._upsample_base(lrs[:, i])
            bases.append(base)
            outputs.append(self.conv_last(x) + base)
        return torch.stack(bases, dim=1), torch.stack(outputs, dim=1)

    def _upsample_base(self, lr: torch.Tensor) -> torch.Tensor:
        if self.base_upsample == "lanczos":
            return lanczos_upsample(lr, SCALE)
        return F.interpolate(lr, scale_factor=SCALE, mode=self.base_upsample, align_corners=False)

    def forward(self, lrs: torch.Tensor) -> torch.Tensor:
        self.check_input(lrs)
        with winograd.reuse_filters():  # wide layers: transformed filters computed once per pass, not per frame
            return self._forward(lrs)

    def _forward(self, lrs: torch.Tensor) -> torch.Tensor:
        _, t, _, h, w = lrs.shape
        estimator = self.classical_flow if self.classical_flow is not None else self.spynet
        use_flow = self.flow != "zero" and t > 1
        base, first = self._first_stage(lrs, clip_flows(estimator, lrs) if use_flow else None)
        base, _, _ = pad_to_multiple(base, self.dct_k)
        first, _, _ = pad_to_multiple(first, self.dct_k)
        # the published code estimates the frequency stage's flows on the first-stage output
        out = self.FTT(base, first, clip_flows(estimator, first) if use_flow else None)
        return out[..., : SCALE * h, : SCALE * w]


def _check_config(
    mid_channels,
    num_blocks,
    stride,
    keyframe_stride,
    dct_kernel,
    d_model,
    n_heads,
    ftt_channels,
    hr_channels,
    flow,
    base_upsample,
    attention,
) -> None:
    for name, value in (
        ("mid_channels", mid_channels),
        ("num_blocks", num_blocks),
        ("stride", stride),
        ("keyframe_stride", keyframe_stride),
        ("d_model", d_model),
        ("n_heads", n_heads),
        ("ftt_channels", ftt_channels),
        ("hr_channels", hr_channels),
    ):
        lowest = 0 if name == "num_blocks" else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
            raise FTVSRError(f"FTVSR: {name} must be an integer >= {lowest}, got {value!r}")
    if stride % 4:
        # the 1.5x / 2x context patches need integral windows and paddings (stride / 4 each side)
        raise FTVSRError(f"FTVSR: stride must be a multiple of 4, got {stride}")
    if len(dct_kernel) != 2 or dct_kernel[0] != dct_kernel[1] or dct_kernel[0] < 1:
        raise FTVSRError(f"FTVSR: dct_kernel must be a square (k, k), got {dct_kernel!r}")
    if ftt_channels % FREQUENCY_GROUPS:
        raise FTVSRError(
            f"FTVSR: ftt_channels must be a multiple of {FREQUENCY_GROUPS} (frequency groups), got {ftt_channels}"
        )
    if d_model % n_heads:
        raise FTVSRError(f"FTVSR: d_model ({d_model}) must be divisible by n_heads ({n_heads})")
    if flow not in FLOW_MODES:
        raise FTVSRError(f"FTVSR: flow must be one of {FLOW_MODES}, got {flow!r}")
    if base_upsample not in BASE_UPSAMPLE_MODES:
        raise FTVSRError(f"FTVSR: base_upsample must be one of {BASE_UPSAMPLE_MODES}, got {base_upsample!r}")
    if attention not in ATTENTION_MODES:
        raise FTVSRError(f"FTVSR: attention must be one of {ATTENTION_MODES}, got {attention!r}")
