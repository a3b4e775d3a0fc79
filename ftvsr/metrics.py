"""PSNR and SSIM exactly as the published evaluation computes them (mmedit's `psnr` / `ssim`).

Both take two uint8 RGB images of shape (h, w, 3) and return a Python float:

- values are compared on the 0..255 scale;
- `convert_to_y=True` compares only the luma of ITU-R BT.601 as MATLAB's `rgb2ycbcr` defines it
  (Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B in 0..255; not rounded);
- `crop_border` pixels are removed from every side before comparing;
- SSIM uses an 11x11 Gaussian window of sigma 1.5 over the "valid" region only (the window never
  leaves the image), the constants (0.01 * 255)^2 and (0.03 * 255)^2, and for three channels the
  mean of the per-channel SSIMs.

The published tables use RGB with no border crop (REDS4) and Y with no border crop (Vid4).
scikit-image's `structural_similarity` with `gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255` computes the same quantity (its Gaussian filter is
truncated at radius 5 = the 11x11 window, and it averages only the region 5 pixels away from the
border, which is exactly mmedit's `filter2D(...)[5:-5, 5:-5]`); `tests/test_metrics.py` checks both
against the published code's outputs to 1e-6 relative.

Identical images: PSNR is +inf, as in the published code (MSE 0); SSIM is 1.0. Averages over
frames that include an exact reconstruction are then +inf as well, which is what the published
evaluation would report; no exact reconstruction happens for real super-resolution outputs.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

from ftvsr.errors import FTVSRError

# ITU-R BT.601 luma weights for R, G, B in [0, 1], output in 16..235 (MATLAB rgb2ycbcr).
_Y_WEIGHTS_RGB = np.array([65.481, 128.553, 24.966])
_SSIM_WINDOW = 11  # 11x11 Gaussian window, sigma 1.5


def _check_pair(gt: np.ndarray, pred: np.ndarray, crop_border: int) -> None:
    for name, img in (("gt", gt), ("pred", pred)):
        if not isinstance(img, np.ndarray):
            raise FTVSRError(f"{name}: expected a numpy array, got {type(img).__name__}")
        if img.dtype != np.uint8:
            raise FTVSRError(f"{name}: expected uint8 values 0..255, got dtype {img.dtype}")
        if img.ndim != 3 or img.shape[2] != 3:
            raise FTVSRError(f"{name}: expected an (h, w, 3) RGB image, got shape {img.shape}")
    if gt.shape != pred.shape:
        raise FTVSRError(f"gt and pred differ in shape: gt {gt.shape}, pred {pred.shape}")
    if not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise FTVSRError(f"crop_border must be a non-negative integer, got {crop_border!r}")
    h, w = gt.shape[:2]
    if 2 * crop_border >= min(h, w):
        raise FTVSRError(f"crop_border {crop_border} leaves nothing of a {h}x{w} image")


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Luma of an (h, w, 3) RGB image in 0..255 -> float64 (h, w) in 16..235 (BT.601, unrounded)."""
    return img.astype(np.float64) @ (_Y_WEIGHTS_RGB / 255.0) + 16.0


def _prepare(img: np.ndarray, crop_border: int, convert_to_y: bool) -> np.ndarray:
    """(h, w, 3) uint8 -> float64 (h', w', c) with c = 1 for Y, cropped."""
    out = rgb_to_y(img)[..., None] if convert_to_y else img.astype(np.float64)
    if crop_border:
        out = out[crop_border:-crop_border, crop_border:-crop_border]
    return out


def psnr(gt: np.ndarray, pred: np.ndarray, crop_border: int = 0, convert_to_y: bool = False) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 (h, w, 3) RGB images (peak 255).

    Mean squared error over all remaining pixels and channels; +inf when the images are identical.
    """
    _check_pair(gt, pred, crop_border)
    diff = _prepare(gt, crop_border, convert_to_y) - _prepare(pred, crop_border, convert_to_y)
    mse = float(np.mean(diff**2))
    if mse == 0.0:
        return math.inf
    return 20.0 * math.log10(255.0 / math.sqrt(mse))


def ssim(gt: np.ndarray, pred: np.ndarray, crop_border: int = 0, convert_to_y: bool = False) -> float:
    """Structural similarity (Wang et al. 2004) between two uint8 (h, w, 3) RGB images.

    Per channel (or on Y), then averaged; 1.0 for identical images. The cropped image must be at
    least 11x11, the size of the window.
    """
    _check_pair(gt, pred, crop_border)
    a = _prepare(gt, crop_border, convert_to_y)
    b = _prepare(pred, crop_border, convert_to_y)
    if min(a.shape[:2]) < _SSIM_WINDOW:
        raise FTVSRError(
            f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after cropping, got {a.shape[0]}x{a.shape[1]}"
        )
    per_channel = [
        structural_similarity(
            a[..., c],
            b[..., c],
            data_range=255.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for c in range(a.shape[2])
    ]
    return float(np.mean(per_channel))
