from __future__ import annotations

import math

import numpy as np
import pytest

from ftvsr.data.imresize import contributions, cubic, imresize, output_size
from ftvsr.errors import FTVSRError

# -- a direct, loop-by-loop reading of MATLAB's imresize, to check the vectorised one against --


def _reference_1d(signal: np.ndarray, out_len: int, scale: float) -> np.ndarray:
    """Resize a 1-D float signal the slow way: every output sample, every input sample near it."""
    n = len(signal)
    width = 4.0 / scale if scale < 1 else 4.0
    out = np.zeros(out_len)
    for x in range(1, out_len + 1):  # MATLAB's 1-based output index
        u = x / scale + 0.5 * (1 - 1 / scale)  # where it sits on the input, 1-based
        total, acc = 0.0, 0.0
        for j in range(math.floor(u - width) - 1, math.ceil(u + width) + 2):
            d = u - j
            w = scale * float(cubic(scale * d)) if scale < 1 else float(cubic(d))
            if w == 0:
                continue
            k = j
            while k < 1 or k > n:  # symmetric padding: ... 2 1 | 1 2 ... n | n n-1 ...
                k = 1 - k if k < 1 else 2 * n + 1 - k
            total += w
            acc += w * signal[k - 1]
        out[x - 1] = acc / total
    return out


def _reference(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    sh, sw = out_h / img.shape[0], out_w / img.shape[1]
    is_uint8 = img.dtype == np.uint8
    x = img.astype(np.float64)
    order = [0, 1] if sh <= sw else [1, 0]
    for axis in order:
        out_len, s = (out_h, sh) if axis == 0 else (out_w, sw)
        x = np.apply_along_axis(_reference_1d, axis, x, out_len, s)
        if is_uint8:  # MATLAB returns uint8 after each dimension: round half away, saturate
            x = np.floor(np.clip(x, 0, 255) + 0.5)
    return x.astype(np.uint8) if is_uint8 else x


def test_cubic_kernel_known_values() -> None:
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5, -1.5, 0.25, 1.25])
    expected = [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625, -0.0625, 0.8671875, -0.0703125]
    np.testing.assert_allclose(cubic(x), expected, rtol=0, atol=1e-15)


def test_hand_computed_upscale() -> None:
    # Width 2 -> 4 at scale 2: output 1 sits at u = 0.75 (1-based); taps 0, 1, 2, 3 at distances
    # 1.75, 0.75, -0.25, -1.25 give weights -0.0234375, 0.2265625, 0.8671875, -0.0703125; the
    # taps 0 and 3 mirror to samples 1 and 2. For [0, 1]: -0.0234375 - 0.0703125 = -0.09375.
    img = np.array([[0.0, 1.0]])
    out = imresize(img, 2)
    assert out.shape == (2, 4)
    for row in out:  # the height 1 -> 2 pass only copies the single row
        np.testing.assert_allclose(row, [-0.09375, 0.203125, 0.796875, 1.09375], atol=1e-15)


def test_contributions_weights_sum_to_one_and_stay_in_range() -> None:
    for in_len, out_len, scale in [(20, 5, 0.25), (5, 20, 4.0), (7, 3, 3 / 7), (9, 9, 1.0)]:
        weights, indices = contributions(in_len, out_len, scale)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
        assert indices.min() >= 0 and indices.max() < in_len


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
@pytest.mark.parametrize("scale", [0.25, 0.3, 0.5, 1.7, 2, 4])
def test_constant_image_stays_constant(dtype: type, scale: float) -> None:
    img = np.full((17, 23, 3), 200 if dtype == np.uint8 else 0.37, dtype=dtype)
    out = imresize(img, scale)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.astype(np.float64), float(img.flat[0]), atol=1e-12)


def test_output_shape_rounding_like_matlab() -> None:
    assert imresize(np.zeros((10, 7)), 0.25).shape == (3, 2)  # ceil(2.5), ceil(1.75)
    assert imresize(np.zeros((10, 7, 3)), 0.5).shape == (5, 4, 3)
    assert imresize(np.zeros((9, 11), np.uint8), 4).shape == (36, 44)
    assert imresize(np.zeros((144, 176, 3)), output_shape=(50, 61)).shape == (50, 61, 3)
    assert output_size((180, 320), 4) == (720, 1280)
    assert output_size((181, 321), 0.25) == (46, 81)


def test_identity_at_scale_one() -> None:
    img = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    np.testing.assert_array_equal(imresize(img, 1), img)


@pytest.mark.parametrize(
    ("shape", "out_shape"),
    [((16, 12), (4, 3)), ((13, 11), (7, 5)), ((5, 4), (20, 16)), ((6, 7), (11, 19)), ((12, 9), (5, 27))],
)
def test_agrees_with_direct_reference_float(shape: tuple[int, int], out_shape: tuple[int, int]) -> None:
    img = np.random.default_rng(1).random(shape)
    np.testing.assert_allclose(imresize(img, output_shape=out_shape), _reference(img, *out_shape), atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "scale", "out_shape"),
    [((16, 20), 0.25, None), ((7, 9), 4, None), ((10, 10), 0.5, None), ((7, 9), None, (28, 5))],
)
def test_agrees_with_direct_reference_uint8(
    shape: tuple[int, int], scale: float | None, out_shape: tuple[int, int] | None
) -> None:
    # uint8 is rounded after each dimension, so the order (smaller scale first) shows here
    img = np.random.default_rng(2).integers(0, 256, (*shape, 3), dtype=np.uint8)
    out = imresize(img, scale, output_shape=out_shape)
    ref = np.stack([_reference(img[..., c], *out.shape[:2]) for c in range(3)], axis=-1)
    np.testing.assert_array_equal(out, ref)


def test_linear_ramp_is_reproduced_at_the_right_positions() -> None:
    # Normalised symmetric kernels keep a linear ramp linear; where each output lands on it
    # checks the coordinate mapping u = x / s + (1 - 1 / s) / 2 (away from mirrored borders).
    ramp = np.tile(3.0 * np.arange(64) + 5.0, (8, 1))
    down = imresize(ramp, 0.25)[0]
    x = np.arange(1, 17)
    expected = 3.0 * ((x / 0.25 + 0.5 * (1 - 4)) - 1) + 5.0
    np.testing.assert_allclose(down[2:14], expected[2:14], atol=1e-9)
    up = imresize(ramp[:, :16], 4)[0]
    x = np.arange(1, 65)
    expected = 3.0 * ((x / 4 + 0.5 * (1 - 0.25)) - 1) + 5.0
    np.testing.assert_allclose(up[8:56], expected[8:56], atol=1e-9)


def test_down_then_up_recovers_a_smooth_image() -> None:
    yy, xx = np.mgrid[0:96, 0:128]
    smooth = 0.5 + 0.4 * np.sin(2 * np.pi * xx / 64) * np.cos(2 * np.pi * yy / 48)
    back = imresize(imresize(smooth, 0.25), 4)
    assert back.shape == smooth.shape
    inner = (slice(16, -16), slice(16, -16))
    assert np.abs(back[inner] - smooth[inner]).max() < 0.02
    # ...while fine detail is removed by the antialiasing filter, not aliased into the result
    stripes = np.tile((np.arange(128) % 2).astype(np.float64), (96, 1))
    np.testing.assert_allclose(imresize(stripes, 0.25)[4:-4, 4:-4], 0.5, atol=1e-3)


def test_uint8_rounds_and_saturates() -> None:
    # A sharp step overshoots below 0 and above 255 in float: uint8 output is clipped.
    img = np.zeros((8, 8), np.uint8)
    img[:, 4:] = 255
    as_float = imresize(img.astype(np.float64), 2)
    assert as_float.min() < 0 and as_float.max() > 255
    out = imresize(img, 2)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


def test_bad_arguments() -> None:
    img = np.zeros((8, 8))
    with pytest.raises(FTVSRError):
        imresize(img)
    with pytest.raises(FTVSRError):
        imresize(img, 2, output_shape=(4, 4))
    with pytest.raises(FTVSRError):
        imresize(img, -1)
    with pytest.raises(FTVSRError):
        imresize(np.zeros((8, 8), np.int32), 2)
    with pytest.raises(FTVSRError):
        imresize(np.zeros(8), 2)
