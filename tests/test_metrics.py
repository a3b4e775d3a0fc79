from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import correlate2d

from ftvsr.errors import FTVSRError
from ftvsr.metrics import psnr, rgb_to_y, ssim


@pytest.fixture(scope="module")
def cases(parity_dir):
    data = np.load(parity_dir / "metrics_cases.npz")
    columns = [str(c) for c in data["columns"]]
    assert columns == ["psnr_rgb_crop0", "ssim_rgb_crop0", "psnr_y_crop4", "ssim_y_crop4"]
    return data["gt"], data["pred"], data["expected"]


@pytest.mark.parametrize("case", [0, 1, 2])
def test_matches_published_evaluation(cases, case):
    gt, pred, expected = cases
    got = [
        psnr(gt[case], pred[case]),
        ssim(gt[case], pred[case]),
        psnr(gt[case], pred[case], crop_border=4, convert_to_y=True),
        ssim(gt[case], pred[case], crop_border=4, convert_to_y=True),
    ]
    np.testing.assert_allclose(got, expected[case], rtol=1e-6, atol=0)


def _reference_ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    """mmedit's _ssim written out: 11x11 Gaussian (sigma 1.5) over the valid region."""
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    g /= g.sum()
    window = np.outer(g, g)
    f = lambda img: correlate2d(img, window, mode="valid")  # noqa: E731
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = f(a), f(b)
    s1, s2, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    return float((((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))).mean())


def test_ssim_equals_the_written_out_formula_on_other_sizes():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
    expected_rgb = np.mean(
        [_reference_ssim_channel(gt[..., c].astype(float), pred[..., c].astype(float)) for c in range(3)]
    )
    assert ssim(gt, pred) == pytest.approx(expected_rgb, rel=1e-10)
    y = _reference_ssim_channel(rgb_to_y(gt)[2:-2, 2:-2], rgb_to_y(pred)[2:-2, 2:-2])
    assert ssim(gt, pred, crop_border=2, convert_to_y=True) == pytest.approx(y, rel=1e-10)


def test_psnr_by_hand_and_crop():
    gt = np.zeros((16, 16, 3), np.uint8)
    pred = gt.copy()
    pred[0, :, :] = 10  # only the first row differs
    mse = 100 * 16 * 3 / gt.size
    assert psnr(gt, pred) == pytest.approx(20 * math.log10(255 / math.sqrt(mse)))
    assert psnr(gt, pred, crop_border=1) == math.inf  # the differing row is cropped away


def test_y_is_bt601_studio_range():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    np.testing.assert_allclose(rgb_to_y(img)[0], [16.0, 235.0, 16 + 65.481], atol=1e-9)


def test_identical_images():
    img = np.random.default_rng(1).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    assert psnr(img, img) == math.inf  # as the published code: MSE 0 -> inf
    assert ssim(img, img) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "gt, pred, crop, message",
    [
        (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 17, 3), np.uint8), 0, "differ in shape"),
        (np.zeros((16, 16, 3), np.float32), np.zeros((16, 16, 3), np.float32), 0, "uint8"),
        (np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8), 0, r"\(h, w, 3\)"),
        (np.zeros((16, 16, 4), np.uint8), np.zeros((16, 16, 4), np.uint8), 0, r"\(h, w, 3\)"),
        (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8), 8, "crop_border 8"),
        (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8), -1, "non-negative"),
    ],
)
def test_bad_inputs(gt, pred, crop, message):
    for fn in (psnr, ssim):
        with pytest.raises(FTVSRError, match=message):
            fn(gt, pred, crop_border=crop)


def test_ssim_needs_a_full_window():
    img = np.zeros((20, 20, 3), np.uint8)
    assert psnr(img, img + 1, crop_border=5) > 0  # PSNR has no minimum size
    with pytest.raises(FTVSRError, match="11x11"):
        ssim(img, img, crop_border=5)
