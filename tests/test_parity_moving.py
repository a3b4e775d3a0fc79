"""Parity with the published forward where the network moves (tests/fixtures/moving/README.md).

Large SPyNet flows (keyframe trajectories move at every propagation step), odd frame sizes
(DCT padding, an LTAM remainder), a batch of two clips and keyframe stride 1: references made
by the published code (tests/fixtures/make_moving_parity.py). Same criterion as the shared
parity fixture: mean absolute difference <= 1e-4 and at least 99.9 % of values within 1e-3.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import FIXTURES, assert_matches_published

MOVING_DIR = FIXTURES / "moving"
CASES = ["moving_odd", "moving_batch2", "moving_stride1"]


@pytest.fixture(scope="module", params=CASES)
def case(request) -> dict:
    return torch.load(MOVING_DIR / f"{request.param}.pt", weights_only=True)


def _fixture_script():
    """The script that made the fixtures: its weight recipe and digest serve the test unchanged."""
    spec = importlib.util.spec_from_file_location("make_moving_parity", FIXTURES / "make_moving_parity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _fixture_script()
weights_digest = SCRIPT.weights_digest


def moving_checkpoint(case: dict, synth_weights) -> dict:
    """The parity recipe's weights with SPyNet's last convs scaled per output channel."""
    return SCRIPT.moving_checkpoint(synth_weights, case["schema"], case["fixed"], case["spynet_scale"])


def test_case_really_moves(case):
    facts = case["facts"]
    n, t = case["input"].shape[:2]
    assert facts["lr_flow_mean"] > 2.0 and facts["lr_flow_max"] > 4.0  # pixels
    calls = n if facts["published_forward"] == "clip by clip" else 1  # the published forward fails on batches
    assert facts["trajectory_steps"] == calls * 2 * (t - 1)
    assert facts["trajectory_moved_every_step_and_keyframe"]
    assert min(facts["trajectory_moved_fraction_per_step"]) > 0
    # skipping the published trajectory update moves the output far beyond the criterion
    assert facts["no_trajectory_update_mean_abs_diff"] > 100 * 1e-4
    # the reference does not hinge on rounding (nearest-neighbour trajectories, keyframe choice, float32)
    assert facts["trajectory_rounding_margin"] >= 1e-4 and facts["keyframe_choice_min_gap"] >= 2e-5
    assert facts["float64_max_abs_diff"] < 1e-4


def test_case_shapes(case):
    n, t, _, h, w = case["input"].shape
    assert case["output"].shape == (n, t, 3, 4 * h, 4 * w)
    stride, k = case["config"]["stride"], case["config"]["dct_kernel"][0]
    assert h % stride or w % stride  # an LTAM remainder
    assert (4 * h) % k or (4 * w) % k  # DCT padding


def test_weights_are_rebuilt_bit_for_bit(case, synth_weights):
    state = moving_checkpoint(case, synth_weights)["state_dict"]
    assert weights_digest(state) == case["weights_sha256"]


def test_parity_with_published_forward_where_it_moves(case, synth_weights, tmp_path):
    path = tmp_path / "FTVSR_synthetic_moving.pth"
    torch.save(moving_checkpoint(case, synth_weights), path)
    assert_matches_published(case["config"], path, case["input"], case["output"])
