"""super_resolve: uint8 in, uint8 out; whole clip, temporal chunks, spatial tiles; devices."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ftvsr.inference
from ftvsr.errors import FTVSRError
from ftvsr.inference import CHUNK_OVERLAP, chunk_spans, resolve_device, super_resolve, to_uint8, windows
from ftvsr.metrics import psnr
from ftvsr.models import FTVSR

TINY = dict(mid_channels=16, num_blocks=1, ftt_channels=64, d_model=32, n_heads=2)


def tiny_model(seed: int = 0, **options) -> FTVSR:
    """A small random FTVSR; zero flow unless asked (SPyNet dominates the cost at this size)."""
    torch.manual_seed(seed)
    return FTVSR(**{**TINY, "flow": "zero", **options})


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """A smooth random clip, uint8 (6, 20, 24, 3)."""
    coarse = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (6, 3, 5, 6)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(20, 24), mode="bilinear", align_corners=False)
    return smooth.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_to_uint8_clamps_scales_and_rounds_like_tensor2img():
    values = torch.tensor([-0.3, 0.0, 0.4 / 255, 0.6 / 255, 100.3 / 255, 254.7 / 255, 1.0, 1.7])
    frame = values.view(1, 1, 1, -1).expand(1, 3, 1, -1).clone()
    frame[:, 1] = 0.5  # channels stay in RGB order
    out = to_uint8(frame)
    assert out.shape == (1, 1, 8, 3) and out.dtype == np.uint8
    assert out[0, 0, :, 0].tolist() == [0, 0, 0, 1, 100, 255, 255, 255]
    assert (out[..., 1] == 128).all()  # 127.5 rounds half to even


def test_whole_clip_is_one_model_pass(frames):
    model = tiny_model(flow="spynet").train()
    out = super_resolve(model, frames)
    assert out.shape == (6, 80, 96, 3) and out.dtype == np.uint8
    assert model.training  # mode restored
    with torch.no_grad():
        lrs = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255).unsqueeze(0)
        direct = to_uint8(model.eval()(lrs)[0])
    assert np.array_equal(out, direct)


def test_windows_cover_with_overlap():
    assert windows(10, None, 2) == [(0, 10)]
    assert windows(10, 12, 2) == [(0, 10)]
    spans = windows(10, 4, 2)
    assert spans[0][0] == 0 and spans[-1][1] == 10
    assert all(e - s == 4 for s, e in spans)
    assert all(prev_end - start >= 2 for (_, prev_end), (start, _) in pairwise(spans))


@pytest.mark.parametrize(
    "length, chunk, overlap", [(20, 8, 4), (60, 20, 8), (60, 10, 8), (10, 4, 2), (7, 3, 2), (9, 12, 4)]
)
def test_chunk_spans_share_the_overlap_and_the_keyframes(length, chunk, overlap):
    for align in (1, 3):
        spans = chunk_spans(length, chunk, overlap, align)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(0 < e - s <= chunk for s, e in spans)
        assert all(prev_end - start >= overlap for (_, prev_end), (start, _) in pairwise(spans))
        assert all(s1 < s2 and e1 < e2 for (s1, e1), (s2, e2) in pairwise(spans))
    aligned = chunk_spans(length, chunk, overlap, 3)
    if chunk - overlap >= 5:  # room to align (else the chunks fall back to unaligned)
        assert all(s % 3 == 0 and (length - e) % 3 == 0 for s, e in aligned)


def moving_clip(frames: int, h: int = 20, w: int = 24) -> np.ndarray:
    """A smooth random pattern panning one pixel a frame, uint8 (frames, h, w, 3)."""
    coarse = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (1, 3, 6, 7)).astype(np.float32))
    wide = F.interpolate(coarse, size=(h, w + frames), mode="bilinear", align_corners=False)[0]
    clip = torch.stack([wide[:, :, i : i + w] for i in range(frames)])
    return clip.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_default_chunk_overlap_hides_the_seams():
    # a random recurrent model: chunked frames differ from the one pass where a chunk lacks
    # context. With the default overlap every frame is within 48.5 dB of the one-pass output
    # (49.8 dB); a hard cut (overlap 0: 44.4 dB) or the former chunks (overlap 2, starts and
    # ends not on the keyframe grid: 47.5 dB) fall below
    model, clip = tiny_model(), moving_clip(22)
    whole = super_resolve(model, clip)
    chunked = super_resolve(model, clip, chunk=12)
    assert len(chunk_spans(22, 12, CHUNK_OVERLAP, model.keyframe_stride)) >= 3
    worst = min(psnr(a, b) for a, b in zip(whole, chunked, strict=True))
    assert worst > 48.5, worst


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(FTVSRError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    with pytest.raises(FTVSRError, match=r"device 'cuda' is not available: this torch build .* has no CUDA"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FTVSRError, match="device 'cuda:0' is not available: no CUDA device is visible"):
        resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(FTVSRError, match="device 'cuda:1' is not available: 1 CUDA device visible"):
        resolve_device("cuda:1")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a computer without CUDA")
def test_super_resolve_on_a_missing_device_raises(frames):
    with pytest.raises(FTVSRError, match="device 'cuda'"):
        super_resolve(tiny_model(), frames[:2], device="cuda")
    assert ftvsr.inference.CHUNK_OVERLAP == CHUNK_OVERLAP


def test_chunks_and_tiles_reproduce_a_local_model_exactly(frames):
    # zero heads + hf_once: the output is the bilinear base, so only the plumbing can differ
    model = tiny_model(zero_init_heads=True, hf_once=True)
    whole = super_resolve(model, frames)
    for options in (
        dict(chunk=3, chunk_overlap=1),
        dict(tile=16, tile_overlap=6),
        dict(chunk=4, chunk_overlap=2, tile=15, tile_overlap=4),
    ):
        part = super_resolve(model, frames, **options)
        assert part.shape == whole.shape
        assert np.abs(part.astype(int) - whole.astype(int)).max() <= 1, options
        assert mean_abs(part, whole) < 0.05, options


def test_chunks_and_tiles_stay_close_on_a_random_model(frames):
    model = tiny_model()
    whole = super_resolve(model, frames)
    unrelated = mean_abs(super_resolve(tiny_model(seed=1), frames), whole)
    for options in (
        dict(chunk=4, chunk_overlap=2),
        dict(tile=16, tile_overlap=8),
        dict(chunk=4, chunk_overlap=2, tile=16, tile_overlap=8),
    ):
        part = super_resolve(model, frames, **options)
        assert part.shape == whole.shape and part.dtype == np.uint8
        assert mean_abs(part, whole) < min(3.0, unrelated / 4), options


def test_bfloat16_autocast_and_progress(frames):
    model = tiny_model()
    full = super_resolve(model, frames[:2])
    reduced = super_resolve(model, frames[:2], amp_dtype=torch.bfloat16, progress=True)
    assert reduced.shape == full.shape
    assert mean_abs(reduced, full) < 2.0


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros((2, 32, 40, 3), np.float32), "uint8 RGB frames"),
        (np.zeros((32, 40, 3), np.uint8), "uint8 RGB frames"),
        (np.zeros((0, 32, 40, 3), np.uint8), "empty clip"),
    ],
)
def test_bad_frames(bad, words):
    with pytest.raises(FTVSRError, match=words):
        super_resolve(tiny_model(), bad)


def test_bad_chunk_and_tile(frames):
    with pytest.raises(FTVSRError, match="chunk_overlap < chunk"):
        super_resolve(tiny_model(), frames, chunk=2, chunk_overlap=2)
    with pytest.raises(FTVSRError, match="minimum frame size 15"):
        super_resolve(tiny_model(), frames, tile=8)
    with pytest.raises(FTVSRError, match="too small"):
        super_resolve(tiny_model(), frames[:, :14])
