"""MATLAB's ``imresize`` with the bicubic kernel, as the published BI recipe uses it.

``BI_degradation.m`` runs ``imresize(im2double(img), 1/4, 'bicubic')``: Keys' cubic kernel
with a = -0.5, antialiasing when shrinking (the kernel is stretched by 1/scale), symmetric
edge padding, output size ``ceil(scale * size)``, and the two dimensions resized one after
the other, the one with the smaller scale first (rows first on a tie). On uint8 input MATLAB
rounds (half away from zero) and saturates to uint8 after *each* dimension; so does this.

The same function is the evaluation's bicubic baseline (``imresize(lr, 4)``).
"""

from __future__ import annotations

import math

import numpy as np

from ftvsr.errors import FTVSRError

CUBIC_A = -0.5
CUBIC_WIDTH = 4.0  # support of the cubic kernel: [-2, 2]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), elementwise."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def contributions(
    in_length: int, out_length: int, scale: float, antialiasing: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based source indices, each ``(out_length, taps)``, for one dimension.

    Output sample ``i`` (1-based ``x``) sits at input coordinate ``u = x / scale + (1 - 1/scale) / 2``;
    its taps are the input samples within half the kernel width, weighted by the kernel
    (stretched by 1/scale when shrinking with antialiasing), normalised to sum to 1; taps
    outside the input are mirrored back in (MATLAB's symmetric padding).
    """
    if scale < 1 and antialiasing:
        kernel_width = CUBIC_WIDTH / scale

        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * x)
    else:
        kernel_width = CUBIC_WIDTH
        kernel = cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(taps)[None, :]  # 1-based, may fall outside
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    used = np.any(weights != 0, axis=0)  # drop tap columns that are zero for every output
    return weights[:, used], indices[:, used]


def _round_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB's double -> uint8: round half away from zero, saturate to [0, 255]."""
    return np.floor(np.clip(x, 0, 255) + 0.5).astype(np.uint8)


def _resize_along(img: np.ndarray, axis: int, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
    source = np.moveaxis(img, axis, 0).astype(np.float64, copy=False)
    out = np.zeros((weights.shape[0], *source.shape[1:]), dtype=np.float64)
    expand = (slice(None),) + (None,) * (source.ndim - 1)
    for tap in range(weights.shape[1]):
        out += weights[:, tap][expand] * source[indices[:, tap]]
    if img.dtype == np.uint8:
        out = _round_uint8(out)
    return np.moveaxis(out, 0, axis)


def output_size(in_shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """MATLAB's output size for a scale factor: ``ceil(scale * size)`` per dimension."""
    return (math.ceil(scale * in_shape[0]), math.ceil(scale * in_shape[1]))


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
    antialiasing: bool = True,
) -> np.ndarray:
    """Resize an ``(h, w)`` or ``(h, w, c)`` image like MATLAB's ``imresize(img, ..., 'bicubic')``.

    Give exactly one of `scale` (the same factor for both dimensions; output size
    ``ceil(scale * size)``) or `output_shape` ``(out_h, out_w)`` (each dimension's scale is
    ``out / in``). uint8 input gives uint8 output, rounded as MATLAB does; float input is
    computed in float64 and returned as float64, unclipped.
    """
    if (scale is None) == (output_shape is None):
        raise FTVSRError("imresize: give exactly one of scale or output_shape")
    img = np.asarray(img)
    if img.ndim not in (2, 3) or img.shape[0] < 1 or img.shape[1] < 1:
        raise FTVSRError(f"imresize: expected an (h, w) or (h, w, c) image, got shape {img.shape}")
    if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
        raise FTVSRError(f"imresize: expected uint8 or float pixels, got {img.dtype}")
    in_shape = (img.shape[0], img.shape[1])
    if scale is not None:
        if not scale > 0:
            raise FTVSRError(f"imresize: scale must be positive, got {scale}")
        scales = (float(scale), float(scale))
        out_shape = output_size(in_shape, scale)
    else:
        assert output_shape is not None  # exactly one of the two is given (checked above)
        out_shape = (int(output_shape[0]), int(output_shape[1]))
        if min(out_shape) < 1:
            raise FTVSRError(f"imresize: output_shape must be positive, got {output_shape}")
        scales = (out_shape[0] / in_shape[0], out_shape[1] / in_shape[1])
    out = img
    for axis in sorted((0, 1), key=lambda a: scales[a]):  # stable: rows first on a tie
        weights, indices = contributions(in_shape[axis], out_shape[axis], scales[axis], antialiasing)
        out = _resize_along(out, axis, weights, indices)
    return out if img.dtype == np.uint8 else out.astype(np.float64, copy=False)
