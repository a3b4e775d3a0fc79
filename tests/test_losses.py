"""Charbonnier loss as mmedit computes it: mean(sqrt((pred - target)^2 + eps)), eps 1e-12."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ftvsr.losses import charbonnier_loss


def test_value_is_the_mean_of_the_elementwise_charbonnier():
    # mmedit's own docstring example for its masked losses: pred [0, 2, 3], target [1, 1, 1]
    pred, target = torch.tensor([0.0, 2.0, 3.0]), torch.tensor([1.0, 1.0, 1.0])
    assert charbonnier_loss(pred, target).item() == pytest.approx(4 / 3, rel=1e-7)

    generator = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 3, 8, 8, generator=generator), torch.rand(2, 3, 3, 8, 8, generator=generator)
    expected = np.sqrt((pred.double().numpy() - target.double().numpy()) ** 2 + 1e-3).mean()
    loss = charbonnier_loss(pred, target, eps=1e-3)
    assert loss.ndim == 0 and loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_perfect_prediction_costs_sqrt_eps_and_has_zero_finite_gradient():
    pred = torch.full((1, 2, 3, 4, 4), 0.5, requires_grad=True)
    loss = charbonnier_loss(pred, pred.detach().clone())  # the published eps, 1e-12
    assert loss.item() == pytest.approx(1e-6, rel=1e-4)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().max() == 0


def test_gradient_is_the_normalised_difference():
    pred = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0.5, 0.25, 0.0], dtype=torch.float64)
    charbonnier_loss(pred, target, eps=1e-12).backward()
    diff = (pred - target).detach()
    torch.testing.assert_close(pred.grad, diff / torch.sqrt(diff**2 + 1e-12) / 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="differ in shape"):
        charbonnier_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="eps must be positive"):
        charbonnier_loss(torch.zeros(2), torch.zeros(2), eps=0.0)
