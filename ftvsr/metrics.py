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

Speed: `ssim` filters only the averaged region, the five local statistics of all channels
together, by whole-array operations in scipy's order (skimage calls scipy's scalar filter loop
30 times per RGB frame, over the whole frame); RGB `psnr` sums squared differences in integers.
Both give the same bits as the former skimage / float64 computation (`tests/test_eval_speed.py`);
on a 640x360 frame (one crop of a REDS frame) SSIM takes ~75-90 ms instead of ~100-120 ms and
PSNR ~1.7 ms instead of ~3 ms. `frame_scores` scores a whole clip, as the evaluation does.
"""

from __future__ import annotations

import math

import numpy as np

from ftvsr.errors import FTVSRError

# ITU-R BT.601 luma weights for R, G, B in [0, 1], output in 16..235 (MATLAB rgb2ycbcr).
_Y_WEIGHTS_RGB = np.array([65.481, 128.553, 24.966])
_SSIM_WINDOW = 11  # 11x11 Gaussian window, sigma 1.5
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = (_SSIM_WINDOW - 1) // 2
_SSIM_BLOCK_ROWS = 16  # output rows filtered at a time: a few MB of intermediates at 640 columns
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2


def _gaussian_weights(sigma: float, radius: int) -> np.ndarray:
    """scipy.ndimage's Gaussian kernel (`_gaussian_kernel1d`, order 0), computed the same way."""
    sigma2 = sigma * sigma
    x = np.arange(-radius, radius + 1)
    phi_x = np.exp(-0.5 / sigma2 * x**2)
    return phi_x / phi_x.sum()


_SSIM_WEIGHTS = _gaussian_weights(_SSIM_SIGMA, _SSIM_RADIUS)  # symmetric: reversing it (scipy does) changes nothing


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
    return _psnr(gt, pred, crop_border, convert_to_y)


def _psnr(gt: np.ndarray, pred: np.ndarray, crop_border: int, convert_to_y: bool) -> float:
    if convert_to_y:
        diff = _prepare(gt, crop_border, True) - _prepare(pred, crop_border, True)
        mse = float(np.mean(diff**2))
    else:
        # the float64 mean of squared integer differences: every partial sum is an integer below
        # 2**53, so the exact integer sum over the count is the same float, bit for bit
        if crop_border:
            gt = gt[crop_border:-crop_border, crop_border:-crop_border]
            pred = pred[crop_border:-crop_border, crop_border:-crop_border]
        diff = (gt.astype(np.int64) - pred).ravel()
        mse = float(np.dot(diff, diff)) / diff.size
    if mse == 0.0:
        return math.inf
    return 20.0 * math.log10(255.0 / math.sqrt(mse))


def ssim(gt: np.ndarray, pred: np.ndarray, crop_border: int = 0, convert_to_y: bool = False) -> float:
    """Structural similarity (Wang et al. 2004) between two uint8 (h, w, 3) RGB images.

    Per channel (or on Y), then averaged; 1.0 for identical images. The cropped image must be at
    least 11x11, the size of the window.
    """
    _check_pair(gt, pred, crop_border)
    return _ssim(gt, pred, crop_border, convert_to_y)


def _ssim(gt: np.ndarray, pred: np.ndarray, crop_border: int, convert_to_y: bool) -> float:
    """skimage's `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=255)` per channel, then the mean, with the same arithmetic value by value.

    skimage filters each statistic of each channel over the whole image with scipy's
    `gaussian_filter1d` (reflected borders), then averages the region 5 pixels in from the
    border, where no reflected value enters. Here only that region is filtered (`_valid_gaussian`:
    scipy's products and sums, in scipy's order), all statistics and channels together, a few
    rows at a time so that the intermediates stay in cache; the formula is skimage's, term by
    term, and each channel's mean is taken over the same array layout as skimage's.
    """
    a = _prepare(gt, crop_border, convert_to_y)  # (h, w, c)
    b = _prepare(pred, crop_border, convert_to_y)
    h, w, channels = a.shape
    if min(h, w) < _SSIM_WINDOW:
        raise FTVSRError(f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after cropping, got {h}x{w}")
    stats = np.empty((h, 5, channels, w), dtype=np.float64)  # rows outermost: row blocks are contiguous
    a, b = a.transpose(0, 2, 1), b.transpose(0, 2, 1)  # (h, c, w)
    stats[:, 0], stats[:, 1] = a, b
    np.multiply(a, a, out=stats[:, 2])
    np.multiply(b, b, out=stats[:, 3])
    np.multiply(a, b, out=stats[:, 4])
    rows, cols = h - 2 * _SSIM_RADIUS, w - 2 * _SSIM_RADIUS
    # S of each channel as skimage holds it: a row stride of w, its (rows, cols) region averaged
    ssim_map = np.empty((channels, rows, w), dtype=np.float64)
    for start in range(0, rows, _SSIM_BLOCK_ROWS):
        stop = min(start + _SSIM_BLOCK_ROWS, rows)
        ux, uy, uxx, uyy, uxy = _valid_gaussian(stats[start : stop + 2 * _SSIM_RADIUS]).transpose(1, 2, 0, 3)
        # skimage's terms, each rounded as there (its cov_norm 1.0 and ux**2 = ux * ux change no bit):
        # A1 = 2 ux uy + C1, A2 = 2 vxy + C2, B1 = ux^2 + uy^2 + C1, B2 = vx + vy + C2, S = A1 A2 / (B1 B2)
        uxux, uyuy = ux * ux, uy * uy
        vxy = uxy - ux * uy
        b2 = (uxx - uxux) + (uyy - uyuy)
        a1 = 2 * ux
        a1 *= uy
        a1 += _SSIM_C1
        vxy *= 2
        vxy += _SSIM_C2
        a1 *= vxy
        uxux += uyuy
        uxux += _SSIM_C1
        b2 += _SSIM_C2
        uxux *= b2
        np.divide(a1, uxux, out=ssim_map[:, start:stop, :cols])
    per_channel = [ssim_map[c, :, :cols].mean(dtype=np.float64) for c in range(channels)]
    return float(np.mean(per_channel))


def _valid_gaussian(x: np.ndarray) -> np.ndarray:
    """The 11x11 Gaussian of `x` (r, p, q, w) along axis 0 then axis 3, where the window fits: (r - 10, p, q, w - 10).

    Value for value what `scipy.ndimage.gaussian_filter1d(..., sigma=1.5, truncate=3.5)` along
    axis 0 then axis 3 gives there: scipy's loop for a symmetric kernel, out = x[i] w[0], then
    out += (x[i - k] + x[i + k]) w[k] for k = 5 down to 1, is done here by whole arrays, in the
    same order.
    """
    r = _SSIM_RADIUS
    weights = _SSIM_WEIGHTS
    rows, cols = x.shape[0] - 2 * r, x.shape[3] - 2 * r
    along_rows = np.multiply(x[r : r + rows], weights[r])
    tmp = np.empty_like(along_rows)
    for k in range(r, 0, -1):
        np.add(x[r - k : r - k + rows], x[r + k : r + k + rows], out=tmp)
        tmp *= weights[r - k]
        along_rows += tmp
    out = np.multiply(along_rows[..., r : r + cols], weights[r])
    tmp = np.empty_like(out)
    for k in range(r, 0, -1):
        np.add(along_rows[..., r - k : r - k + cols], along_rows[..., r + k : r + k + cols], out=tmp)
        tmp *= weights[r - k]
        out += tmp
    return out


def frame_scores(
    gt: np.ndarray, pred: np.ndarray, crop_border: int = 0, convert_to_y: bool = False
) -> list[tuple[float, float]]:
    """(PSNR, SSIM) of every frame of two uint8 clips (t, h, w, 3): `psnr` and `ssim` of each pair."""
    if not isinstance(gt, np.ndarray) or not isinstance(pred, np.ndarray) or gt.ndim != 4 or pred.ndim != 4:
        raise FTVSRError(
            "frame_scores expects two uint8 clips of shape (t, h, w, 3), got "
            f"{getattr(gt, 'shape', type(gt).__name__)} and {getattr(pred, 'shape', type(pred).__name__)}"
        )
    if gt.shape[0] != pred.shape[0]:
        raise FTVSRError(f"gt and pred differ in frame count: gt {gt.shape}, pred {pred.shape}")
    if gt.shape[0] == 0:
        return []
    _check_pair(gt[0], pred[0], crop_border)  # one check covers every frame: same dtype and shape
    return [
        (_psnr(g, p, crop_border, convert_to_y), _ssim(g, p, crop_border, convert_to_y))
        for g, p in zip(gt, pred, strict=True)
    ]
