"""A classical optical flow beside SPyNet: coarse-to-fine Horn–Schunck with warping.

A baseline for FTVSR's alignment that needs no training and no weights: `ClassicalFlow` has
SPyNet's interface (`forward(ref, supp)` -> (b, 2, h, w), the flow from `ref` to `supp` in
pixels), so the two can be swapped to measure what the learned flow adds.

Method: Horn & Schunck, "Determining optical flow", Artificial Intelligence 17 (1981), with the
brightness constancy linearised around the current flow and refined coarse to fine on an image
pyramid (the warping scheme of Brox, Bruhn, Papenberg & Weickert, "High accuracy optical flow
estimation based on a theory for warping", ECCV 2004, here with Horn & Schunck's quadratic
penalties). On the grey level (Rec. 601 luma) of both frames:

1. a pyramid by 2x average pooling, down to at most 8 px on the short side;
2. from the coarsest level on, `warps` times: warp `supp` with the current flow (`flow_warp`,
   border padding), take spatial derivatives (5-point, of the mean of `ref` and the warped
   `supp`, as Sun, Roth & Black recommend in "Secrets of optical flow estimation and their
   principles", CVPR 2010) and the temporal difference, and run `iterations` Jacobi sweeps of
   the Horn–Schunck equations for the flow increment;
3. upsample the flow to the next level's exact size, scaling its values by the size ratios.

Everything is torch (CPU or CUDA), batched, deterministic and run without autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ftvsr.models.spynet import flow_warp

# Rec. 601 luma weights: the flow is estimated on grey levels, as classical methods do.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def pyramid_levels(h: int, w: int, levels: int | None, min_size: int) -> int:
    """How many pyramid levels (the frame itself included) a (h, w) frame gets.

    levels None: halve while the short side is above `min_size`. Either way, never a level
    under 2 px on the short side: the derivatives need neighbours.
    """
    short_side = min(h, w)
    if levels is None:
        levels = 1
        while short_side // 2 ** (levels - 1) > min_size:
            levels += 1
    while levels > 1 and short_side // 2 ** (levels - 1) < 2:
        levels -= 1
    return levels


def spatial_gradients(grey: torch.Tensor) -> torch.Tensor:
    """(n, 1, h, w) -> (n, 2, h, w): d/dx and d/dy, replicating the border.

    The 5-point central derivative (f(x-2) - 8 f(x-1) + 8 f(x+1) - f(x+2)) / 12, from slices:
    on frames this small, slicing is several times faster than a convolution.
    """
    padded = F.pad(grey, (2, 2, 2, 2), mode="replicate")
    rows = padded[:, :, 2:-2]  # the frame's rows, padded columns
    cols = padded[:, :, :, 2:-2]
    d_dx = torch.add(rows[..., :-4] - rows[..., 4:], rows[..., 3:-1] - rows[..., 1:-3], alpha=8.0)
    d_dy = torch.add(cols[..., :-4, :] - cols[..., 4:, :], cols[..., 3:-1, :] - cols[..., 1:-3, :], alpha=8.0)
    return torch.cat((d_dx, d_dy), 1) / 12.0


class _LevelGrid:
    """What `ClassicalFlow._refine` needs of a level's (h, w) grid, made once per level."""

    def __init__(self, h: int, w: int, smoothness: float, like: torch.Tensor) -> None:
        ys, xs = torch.meshgrid(
            torch.arange(h, device=like.device, dtype=like.dtype),
            torch.arange(w, device=like.device, dtype=like.dtype),
            indexing="ij",
        )
        self.positions = torch.stack((xs, ys)).unsqueeze(0)  # (1, 2, h, w): (x, y) of each pixel
        self.last_position = torch.tensor([w - 1, h - 1], device=like.device, dtype=like.dtype).view(1, 2, 1, 1)
        # in-frame neighbours of each pixel: 4 inside, 3 on an edge, 2 in a corner (fewer if h or w is 1)
        neighbours = torch.full((h, w), 4.0, device=like.device, dtype=like.dtype)
        neighbours[0] -= 1
        neighbours[-1] -= 1
        neighbours[:, 0] -= 1
        neighbours[:, -1] -= 1
        neighbours = neighbours.clamp(min=1.0)
        self.inverse_neighbours = neighbours.reciprocal()
        self.smoothness = smoothness / 4.0 * neighbours  # alpha^2 n_i / 4: the Jacobi denominator's prior part


class ClassicalFlow(nn.Module):
    """Parameter-free coarse-to-fine Horn–Schunck flow with SPyNet's interface.

    forward(ref, supp): both (b, 3, h, w) float in [0, 1], any size. Returns (b, 2, h, w): for
    each pixel of `ref`, the (dx, dy) offset in pixels of its match in `supp`, so that
    `flow_warp(supp, flow.permute(0, 2, 3, 1))` approximates `ref`. Detached, same dtype and
    device as `ref`.

    levels: pyramid levels (None: halve until the short side is at most `min_size`).
    iterations: Jacobi sweeps per warp.
    warps: re-linearisations (warp, derivatives, sweeps) per level.
    smoothness: Horn & Schunck's alpha^2, the weight of the flow's squared gradient against the
        squared linearised brightness-constancy residual, for grey levels in [0, 1]. Larger:
        smoother flow; smaller: noisier, slower to converge.
    min_size: the short side at or under which the automatic pyramid stops.
    """

    luma_weights: torch.Tensor  # a buffer, not a parameter

    def __init__(
        self,
        levels: int | None = None,
        iterations: int = 20,
        warps: int = 2,
        smoothness: float = 1e-2,
        min_size: int = 8,
    ) -> None:
        super().__init__()
        if levels is not None and levels < 1:
            raise ValueError(f"ClassicalFlow: levels must be >= 1 or None, got {levels}")
        if iterations < 1 or warps < 1:
            raise ValueError(f"ClassicalFlow: iterations and warps must be >= 1, got {iterations}, {warps}")
        if smoothness <= 0:
            raise ValueError(f"ClassicalFlow: smoothness must be > 0, got {smoothness}")
        if min_size < 2:
            raise ValueError(f"ClassicalFlow: min_size must be >= 2, got {min_size}")
        self.levels = levels
        self.iterations = iterations
        self.warps = warps
        self.smoothness = smoothness
        self.min_size = min_size
        # Non-persistent: nothing to save or load, the state dict stays empty.
        self.register_buffer("luma_weights", torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, iterations={self.iterations}, warps={self.warps}, "
            f"smoothness={self.smoothness}, min_size={self.min_size}"
        )

    def _refine(self, ref: torch.Tensor, supp: torch.Tensor, flow: torch.Tensor, grid: _LevelGrid) -> torch.Tensor:
        """One warp at one level: `flow` plus the Horn–Schunck increment linearised around it.

        Jacobi sweeps on the energy, for the total flow u = flow + increment,
            sum_i (grad_i . increment_i + temporal_i)^2 + (alpha^2 / 4) sum_{4-neighbours i~j} |u_i - u_j|^2,
        whose update at pixel i, with n_i in-frame neighbours and their mean m_i, is
            u_i = m_i - grad_i (grad_i . (m_i - flow_i) + temporal_i) / (alpha^2 n_i / 4 + |grad_i|^2)
        (Horn & Schunck's, with their 4-neighbour mean; at the frame's edge the missing
        neighbours simply drop out, which is the natural boundary condition).
        """
        warped = flow_warp(supp, flow.permute(0, 2, 3, 1), padding_mode="border")
        # derivatives are linear: those of the mean frame are the mean of both frames' derivatives
        gradient = spatial_gradients(0.5 * (ref + warped))
        temporal = warped - ref
        # Pixels whose match lies outside `supp` see the replicated border, not their match: no
        # data term there, the smoothness term fills them in from their neighbours.
        target = flow + grid.positions
        inside = ((target >= 0) & (target <= grid.last_position)).all(1, keepdim=True)
        gradient = gradient * inside
        temporal = temporal * inside
        step = gradient / torch.addcmul(grid.smoothness, gradient[:, 0:1], gradient[:, 0:1]).addcmul_(
            gradient[:, 1:2], gradient[:, 1:2]
        )

        # The increment lives in the interior of a zero-bordered buffer, so a neighbour sum is three
        # adds of fixed views (the zero border is the missing neighbours). The loop is then seven
        # in-place kernels: on small frames the per-call overhead, not the arithmetic, is the cost.
        b, _, h, w = flow.shape
        padded = flow.new_zeros(b, 2, h + 2, w + 2)
        increment = padded[..., 1:-1, 1:-1]
        above, below = padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]
        left, right = padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]

        increment.copy_(flow)  # borrow the buffer for the flow's own neighbour mean
        flow_roughness = torch.addcmul(-flow, above + below + left + right, grid.inverse_neighbours)
        increment.zero_()
        neighbour_sum = torch.empty_like(flow)
        mean_minus_flow = torch.empty_like(flow)  # m(u) - flow = m(increment) + m(flow) - flow
        mean_x, mean_y = mean_minus_flow[:, 0:1], mean_minus_flow[:, 1:2]
        gradient_x, gradient_y = gradient[:, 0:1], gradient[:, 1:2]
        residual = torch.empty_like(temporal)
        for _ in range(self.iterations):
            torch.add(above, below, out=neighbour_sum)
            neighbour_sum.add_(left).add_(right)
            torch.addcmul(flow_roughness, neighbour_sum, grid.inverse_neighbours, out=mean_minus_flow)
            torch.addcmul(temporal, gradient_x, mean_x, out=residual)
            residual.addcmul_(gradient_y, mean_y)
            torch.addcmul(mean_minus_flow, step, residual, value=-1.0, out=increment)
        return flow + increment

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        if ref.dim() != 4 or ref.shape[1] != 3 or ref.shape != supp.shape:
            raise ValueError(
                f"ClassicalFlow: ref and supp must both be (b, 3, h, w), got {tuple(ref.shape)}, {tuple(supp.shape)}"
            )
        with torch.no_grad():
            # half precision is too coarse for derivatives of small differences: work in float32 at least
            dtype = torch.promote_types(ref.dtype, torch.float32)
            luma = self.luma_weights.to(dtype)
            refs = [(ref.to(dtype) * luma).sum(1, keepdim=True)]
            supps = [(supp.to(dtype) * luma).sum(1, keepdim=True)]
            for _ in range(pyramid_levels(ref.shape[2], ref.shape[3], self.levels, self.min_size) - 1):
                refs.append(F.avg_pool2d(refs[-1], kernel_size=2, stride=2))
                supps.append(F.avg_pool2d(supps[-1], kernel_size=2, stride=2))

            flow = refs[-1].new_zeros(ref.shape[0], 2, *refs[-1].shape[2:4])
            for ref_level, supp_level in zip(reversed(refs), reversed(supps), strict=True):
                h, w = ref_level.shape[2:4]
                if flow.shape[2:4] != (h, w):
                    coarse_h, coarse_w = flow.shape[2:4]
                    flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
                    # coarse pixels -> this level's pixels: 2x, or a little more where a size was odd
                    scale = torch.tensor([w / coarse_w, h / coarse_h], dtype=dtype, device=flow.device)
                    flow = flow * scale.view(1, 2, 1, 1)
                grid = _LevelGrid(h, w, self.smoothness, flow)
                for _ in range(self.warps):
                    flow = self._refine(ref_level, supp_level, flow, grid)
            return flow.to(ref.dtype).detach()
