"""Trajectory-aware long-range attention (LTAM, from TTVSR, Liu et al. CVPR 2022) and its buffers.

During one propagation direction, every `keyframe_stride`-th frame is stored as a keyframe:
its propagated feature cut into stride x stride patches at three scales (1x, 1.5x and 2x
patch context, resized back to stride x stride), and its extracted feature (the "index")
used for matching. Each patch position of the current frame follows a trajectory back
through the flows to one position in every keyframe; LTAM picks the keyframe whose index
patch is most similar (cosine) to the current patch, fetches that keyframe's three-scale
patches, fuses them, scales by the similarity and adds them to the propagated feature.

Exactness notes (the published code does the same thing with more copies):
- The trajectory map only ever holds integer patch coordinates: it starts as the integer
  grid and is updated by nearest-neighbour sampling with border clamping. The published
  code's `grid_sample(mode="nearest", align_corners=True)` at such coordinates therefore
  reads exactly one stored patch; we index it directly.
- Normalising a patch vector commutes with fetching it, so index patches are normalised
  once when stored.
- Only the best keyframe's patches are fetched from the three feature buffers, instead of
  resampling every keyframe of every buffer at every frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ftvsr.models.onednn import channels_last
from ftvsr.models.spynet import flow_warp


def patch_tokens(feat: torch.Tensor, stride: int) -> torch.Tensor:
    """(n, c, h, w) -> (n, c * stride * stride, (h // stride) * (w // stride)) non-overlapping patches."""
    return F.unfold(feat, kernel_size=stride, stride=stride)


def context_patch_tokens(feat: torch.Tensor, stride: int, scale: float) -> torch.Tensor:
    """Patches seeing `scale` times the context of a stride x stride patch, resized to stride x stride.

    Each (scale * stride)-wide window (stride `stride`, padded) is laid out side by side in a
    (scale * h, scale * w) canvas, area-resized to (h, w) and cut into stride x stride patches:
    the published cross-scale construction. (n, c, h, w) -> (n, c * stride^2, (h // s) * (w // s)).
    """
    _, _, h, w = feat.shape
    window = int(scale * stride)
    padding = int((scale - 1) / 2 * stride)
    windows = F.unfold(feat, kernel_size=window, padding=padding, stride=stride)
    canvas = F.fold(windows, output_size=(int(scale * h), int(scale * w)), kernel_size=window, stride=window)
    return patch_tokens(F.adaptive_avg_pool2d(canvas, (h, w)), stride)


class KeyframeBuffers:
    """Keyframe patches and the trajectories of the current frame's patches, for one direction.

    Shapes (k = number of keyframes, P = (h // stride) * (w // stride) patch positions,
    D = channels * stride^2):
    - `features`: (n, 3 * D, k, P) the three-scale patches of each keyframe's propagated feature;
    - `index`:    (n, k, D, P) the unit-normalised patches of each keyframe's extracted feature;
    - `location`: (n, k, 2, h // s, w // s) for each current patch position, the (x, y) patch
      coordinates in each keyframe that its trajectory leads to.
    """

    def __init__(self, n: int, h: int, w: int, stride: int, device: torch.device) -> None:
        self.stride = stride
        self.grid_h, self.grid_w = h // stride, w // stride
        grid_y, grid_x = torch.meshgrid(
            torch.arange(self.grid_h, device=device), torch.arange(self.grid_w, device=device), indexing="ij"
        )
        # float32 always: exact integer coordinates also under reduced-precision autocast
        self._identity = torch.stack([grid_x, grid_y]).float().expand(n, 1, 2, -1, -1)
        self.features: torch.Tensor | None = None
        self.index: torch.Tensor | None = None
        self.location: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.index is None else self.index.shape[1]

    def stored(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(`features`, `index`, `location`) of the keyframes stored so far; there must be one."""
        if self.features is None or self.index is None or self.location is None:
            raise RuntimeError("KeyframeBuffers: no keyframe stored yet")
        return self.features, self.index, self.location

    def follow_flow(self, flow: torch.Tensor) -> None:
        """Move every trajectory one frame on, along `flow` (n, 2, h, w) in LR pixels."""
        if self.location is None:
            return
        n, k = self.location.shape[:2]
        patch_flow = F.adaptive_avg_pool2d(flow.float(), (self.grid_h, self.grid_w)) / self.stride
        moved = flow_warp(
            self.location.reshape(n, 2 * k, self.grid_h, self.grid_w),
            patch_flow.permute(0, 2, 3, 1),
            padding_mode="border",
            interpolation="nearest",
        )
        self.location = moved.view(n, k, 2, self.grid_h, self.grid_w)

    def add(self, propagated: torch.Tensor, extracted: torch.Tensor) -> None:
        """Store the current frame as a keyframe: features (n, c, h, w) after and before propagation."""
        s = self.stride
        scales = [
            patch_tokens(propagated, s),
            context_patch_tokens(propagated, s, 1.5),
            context_patch_tokens(propagated, s, 2.0),
        ]
        features = torch.cat(scales, dim=1).unsqueeze(2)
        index = F.normalize(patch_tokens(extracted, s), dim=1).unsqueeze(1)
        location = self._identity.to(propagated.device)
        if self.features is None or self.index is None or self.location is None:  # the first keyframe
            self.features, self.index, self.location = features, index, location
        else:
            self.features = torch.cat([self.features, features], dim=2)
            self.index = torch.cat([self.index, index], dim=1)
            self.location = torch.cat([self.location, location], dim=1)

    def positions(self) -> torch.Tensor:
        """(n, k, P) flat patch index in each keyframe that each current patch's trajectory reaches."""
        x, y = self.stored()[2].round().long().unbind(2)  # exact integers; round() guards float noise
        return (y * self.grid_w + x).flatten(2)


class LTAM(nn.Module):
    """Fuse the keyframe patches that best match the current frame into the propagated feature.

    forward(current, propagated, buffers): current and propagated (n, c, h, w) with
    c = `channels`; returns (n, c, h, w). `buffers` must hold at least one keyframe.
    """

    def __init__(self, channels: int = 64, stride: int = 4) -> None:
        super().__init__()
        self.stride = stride
        self.fusion = nn.Conv2d(3 * channels, channels, 3, 1, 1, bias=True)

    def forward(self, current: torch.Tensor, propagated: torch.Tensor, buffers: KeyframeBuffers) -> torch.Tensor:
        _, _, h, w = propagated.shape
        s = self.stride
        positions = buffers.positions()  # (n, k, P)
        n_positions = positions.shape[2]
        keyframe_features, keyframe_index, _ = buffers.stored()
        dim = keyframe_index.shape[2]

        # cosine similarity of each current patch with its trajectory's patch in every keyframe
        candidates = torch.gather(keyframe_index, 3, positions.unsqueeze(2).expand(-1, -1, dim, -1))
        query = F.normalize(patch_tokens(current, s), dim=1)  # (n, D, P)
        similarity = torch.matmul(candidates.permute(0, 3, 1, 2), query.permute(0, 2, 1).unsqueeze(3))
        best_similarity, best_keyframe = similarity.squeeze(3).max(dim=2)  # (n, P)

        # fetch the best keyframe's three-scale patches at the trajectory's position
        best_position = torch.gather(positions, 1, best_keyframe.unsqueeze(1)).squeeze(1)
        flat = best_keyframe * n_positions + best_position
        features = keyframe_features.flatten(2)  # (n, 3D, k * P)
        chosen = torch.gather(features, 2, flat.unsqueeze(1).expand(-1, features.shape[1], -1))
        fetched = F.fold(chosen, output_size=(h, w), kernel_size=s, stride=s)  # (n, 3c, h, w)

        weight = F.fold(
            best_similarity.unsqueeze(1).expand(-1, s * s, -1), output_size=(h, w), kernel_size=s, stride=s
        )  # (n, 1, h, w)
        return self.fusion(channels_last(fetched)) * weight + propagated
