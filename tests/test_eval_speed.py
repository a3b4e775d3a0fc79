"""The evaluation's faster paths give the same numbers, bit for bit, as the straightforward ones.

- `ftvsr.metrics`: SSIM against skimage's `structural_similarity` per channel (what the module
  computed before), PSNR against the float64 mean of squared differences;
- `ftvsr.models.winograd.reuse_filters`: cached, pre-packed filters against the transform
  recomputed at every call.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from ftvsr.errors import FTVSRError
from ftvsr.io.parallel import torch_threads
from ftvsr.metrics import frame_scores, psnr, rgb_to_y, ssim
from ftvsr.models import FTVSR, onednn, winograd


def _prepared(img: np.ndarray, crop: int, y: bool) -> np.ndarray:
    out = rgb_to_y(img)[..., None] if y else img.astype(np.float64)
    return out[crop:-crop, crop:-crop] if crop else out


def reference_ssim(gt: np.ndarray, pred: np.ndarray, crop: int = 0, y: bool = False) -> float:
    """SSIM as `ftvsr.metrics` computed it before: skimage per channel, then the mean."""
    a, b = _prepared(gt, crop, y), _prepared(pred, crop, y)
    per_channel = [
        structural_similarity(
            a[..., c], b[..., c], data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        for c in range(a.shape[2])
    ]
    return float(np.mean(per_channel))


def reference_psnr(gt: np.ndarray, pred: np.ndarray, crop: int = 0, y: bool = False) -> float:
    mse = float(np.mean((_prepared(gt, crop, y) - _prepared(pred, crop, y)) ** 2))
    return math.inf if mse == 0.0 else 20.0 * math.log10(255.0 / math.sqrt(mse))


def _pair(rng: np.random.Generator, h: int, w: int, spread: int) -> tuple[np.ndarray, np.ndarray]:
    gt = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-spread, spread + 1, gt.shape), 0, 255).astype(np.uint8)
    return gt, pred


# sizes around the row blocks of the SSIM filter (16 output rows), the 11x11 minimum, odd widths
SIZES = [(11, 11), (26, 11), (27, 40), (43, 12), (37, 53), (90, 160)]


@pytest.mark.parametrize(
    "h, w, y, crop",
    [(h, w, y, crop) for h, w in SIZES for y in (False, True) for crop in (0, 3) if min(h, w) - 2 * crop >= 11],
)
def test_metrics_equal_the_reference_bit_for_bit(h, w, y, crop):
    rng = np.random.default_rng(h * 1000 + w)
    for spread in (2, 40):
        gt, pred = _pair(rng, h, w, spread)
        assert ssim(gt, pred, crop, y) == reference_ssim(gt, pred, crop, y)
        assert psnr(gt, pred, crop, y) == reference_psnr(gt, pred, crop, y)


def test_identical_and_extreme_images():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert psnr(img, img) == math.inf and ssim(img, img) == reference_ssim(img, img)
    black, white = np.zeros_like(img), np.full_like(img, 255)
    assert psnr(black, white) == reference_psnr(black, white) == 0.0
    assert ssim(black, white) == reference_ssim(black, white)


def test_frame_scores_equal_per_frame_calls():
    rng = np.random.default_rng(1)
    pairs = [_pair(rng, 24, 36, 20) for _ in range(4)]
    gt, pred = np.stack([g for g, _ in pairs]), np.stack([p for _, p in pairs])
    for crop, y in ((0, False), (2, True)):
        expected = [(psnr(g, p, crop, y), ssim(g, p, crop, y)) for g, p in pairs]
        assert frame_scores(gt, pred, crop, y) == expected
    assert frame_scores(gt[:0], pred[:0]) == []
    with pytest.raises(FTVSRError, match="frame count"):
        frame_scores(gt, pred[:3])
    with pytest.raises(FTVSRError, match="differ in shape"):
        frame_scores(gt, pred[:, :, :30])
    with pytest.raises(FTVSRError, match="uint8"):
        frame_scores(gt.astype(np.float32), pred.astype(np.float32))
    with pytest.raises(FTVSRError, match=r"\(t, h, w, 3\)"):
        frame_scores(gt[0], pred[0])


# ---------------------------------------------------------------- Winograd filters reused

needs_onednn = pytest.mark.skipif(not onednn.available(), reason="oneDNN matmul op not in this torch build")


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: many small ops, which a second thread only slows down on a busy machine."""
    with torch_threads(1):
        yield


@needs_onednn
def test_reused_filters_give_the_same_bits_and_follow_weight_changes():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1)
    x = onednn.channels_last(torch.randn(1, 256, 10, 14))
    with torch.no_grad():
        assert winograd.applies(conv, x)
        fresh = winograd.conv3x3(conv, x)
        with winograd.reuse_filters():
            first = winograd.conv3x3(conv, x)
            with winograd.reuse_filters():  # nested: the same cache
                again = winograd.conv3x3(conv, x)
            conv.weight.mul_(0.5)  # modified in place: its version counter moves, the filters are redone
            halved = winograd.conv3x3(conv, x)
        assert getattr(winograd._local, "cache", None) is None  # freed when the outer block ends
        assert torch.equal(first, fresh) and torch.equal(again, fresh)
        assert torch.equal(halved, winograd.conv3x3(conv, x))
        assert not torch.equal(halved, fresh)


@needs_onednn
def test_forward_transforms_each_wide_layer_once(monkeypatch):
    transforms: list[int] = []
    transform = winograd._filter_transform

    def counted(weight: torch.Tensor) -> torch.Tensor:
        transforms.append(id(weight))
        return transform(weight)

    monkeypatch.setattr(winograd, "_filter_transform", counted)
    torch.manual_seed(0)
    model = FTVSR(mid_channels=16, num_blocks=1, ftt_channels=256, d_model=32, n_heads=2, flow="zero").eval()
    clip = torch.rand(1, 4, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fast = model(clip)
        assert transforms and len(transforms) == len(set(transforms))  # once per layer, 4 frames x 2 directions
        monkeypatch.setattr(winograd, "reuse_filters", _no_reuse)  # the former path: transformed at every call
        transforms.clear()
        slow = model(clip)
    assert len(transforms) > len(set(transforms))
    assert torch.equal(fast, slow)


class _no_reuse:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
