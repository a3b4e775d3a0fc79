"""The training loss: Charbonnier, as the published code computes it (mmedit's `CharbonnierLoss`).

    loss = mean( sqrt((pred - target)^2 + eps) )

over every element (mmedit's `reduction='mean'`, `loss_weight=1.0`, no mask), with eps = 1e-12 as
in the published configs. The square root of `eps` (1e-6) is the loss of a perfect prediction.
"""

from __future__ import annotations

import torch


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean Charbonnier loss between two tensors of the same shape (e.g. (n, t, 3, h, w) in [0, 1]).

    Returns a scalar tensor (0-d) in the dtype of `pred`; differentiable in `pred`.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    return torch.sqrt((pred - target) ** 2 + eps).mean()
