"""Super-resolve a clip of uint8 frames with an FTVSR model: what evaluation and `ftvsr upscale` call.

By default the whole clip goes through the network in one pass (what the published evaluation
does). Long clips can be cut into overlapping temporal chunks and large frames into
overlapping spatial tiles, for bounded memory:

- Chunks: FTVSR propagates features forwards and backwards over the whole window, so a frame
  near a chunk's end lacks the context on that side. Consecutive chunks share
  `chunk_overlap` frames (default `CHUNK_OVERLAP`, chosen by `benchmarks/chunk_seams.py`) and
  each output frame is taken from the chunk where it sits most centrally, so every kept frame
  has at least half the overlap as context on each side. Chunk starts are aligned to the
  model's keyframe stride from the clip's start, and chunk ends from the clip's end, so the
  LTAM keyframes of each chunk are frames the one-pass run also stores.
- Tiles: outputs blended with linear ramps across the overlaps. Tiling changes outputs beyond
  the seams too: the FTT normalises each DCT channel over the whole (tile) frame.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from tqdm import tqdm

from ftvsr.errors import FTVSRError
from ftvsr.models import winograd

SCALE = 4
CHUNK_OVERLAP = 2  # frames shared by consecutive temporal chunks: see benchmarks/chunk_seams.py
TILE_OVERLAP = 16  # LR pixels shared by neighbouring tiles


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device `name` ("auto", "cpu", "cuda", "cuda:1", "mps", ...), checked to be usable here.

    "auto" is the first CUDA device when one is visible, else the CPU. Raises FTVSRError with a
    one-line reason for a malformed name or a device this torch build or this computer does not have.
    """
    if name == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as err:
        raise FTVSRError(f"unknown device {str(name)!r} (expected cpu, cuda, cuda:N, mps, ...)") from err
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if torch.version.cuda is None and torch.version.hip is None:
            raise FTVSRError(
                f"device {str(name)!r} is not available: this torch build ({torch.__version__}) has no CUDA"
            )
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise FTVSRError(f"device {str(name)!r} is not available: no CUDA device is visible")
        if device.index is not None and device.index >= count:
            raise FTVSRError(
                f"device {str(name)!r} is not available: {count} CUDA device{'s' if count > 1 else ''} visible"
            )
        return device
    backend = getattr(torch.backends, device.type, None) or getattr(torch, device.type, None)
    is_available = getattr(backend, "is_available", None)
    if not callable(is_available) or not is_available():
        raise FTVSRError(f"device {str(name)!r} is not available in this torch build or on this computer")
    return device


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(t, 3, H, W) float -> (t, H, W, 3) uint8 as mmedit's `tensor2img`: clamp to [0, 1], x255, round.

    (Rounding is numpy's, half to even, on float32 values, as in the published evaluation.)
    """
    array = frames.detach().float().cpu().clamp_(0, 1).numpy()
    return (array * 255.0).round().astype(np.uint8).transpose(0, 2, 3, 1)


def windows(length: int, size: int | None, overlap: int) -> list[tuple[int, int]]:
    """Windows [start, end) of `size` covering range(length), consecutive ones sharing >= `overlap`.

    The last window is aligned to the end; a `size` of None or >= length gives one window.
    """
    if size is None or size >= length:
        return [(0, length)]
    step = size - overlap
    starts = [*range(0, length - size, step), length - size]
    return [(s, s + size) for s in starts]


def chunk_spans(length: int, chunk: int | None, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """Temporal chunks [start, end) of at most `chunk` frames covering range(length), consecutive
    ones sharing >= `overlap` frames.

    With `align` > 1 (the model's keyframe stride), starts are multiples of `align` and ends lie
    a multiple of `align` before `length`, so that the keyframes of every chunk (forward: its
    start, then every `align`-th frame; backward: its end, then every `align`-th frame before)
    are keyframes of the whole clip. Where alignment cannot advance (`chunk` too close to
    `overlap`), the chunks are unaligned. A `chunk` of None or >= length gives one chunk.
    """
    if chunk is None or chunk >= length:
        return [(0, length)]
    for step in (align, 1) if align > 1 else (1,):
        spans, start = [], 0
        while start + chunk < length:
            end = start + chunk - (start + chunk - length) % step
            next_start = (end - overlap) // step * step
            if next_start <= start:
                break
            spans.append((start, end))
            start = next_start
        else:
            return [*spans, (start, length)]
    raise AssertionError(f"no chunks for length={length}, chunk={chunk}, overlap={overlap}")  # chunk > overlap


def _kept_ranges(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """For overlapping temporal windows: the frames each window contributes (split mid-overlap)."""
    kept = []
    for j, (start, end) in enumerate(spans):
        keep_start = 0 if j == 0 else (start + spans[j - 1][1]) // 2
        keep_end = end if j == len(spans) - 1 else (spans[j + 1][0] + end) // 2
        kept.append((keep_start, keep_end))
    return kept


def _ramp(start: int, end: int, length: int, ramp: int) -> torch.Tensor:
    """1-D blending weights of a tile [start, end) (HR pixels) of an axis of `length`.

    Linear ramps of `ramp` pixels at edges that border another tile, positive everywhere.
    """
    weight = torch.ones(end - start)
    if ramp <= 0:
        return weight
    position = torch.arange(end - start, dtype=torch.float32) + 0.5
    if start > 0:
        weight = torch.minimum(weight, position / ramp)
    if end < length:
        weight = torch.minimum(weight, (end - start - position) / ramp)
    return weight


def _check(
    model: torch.nn.Module,
    frames: np.ndarray,
    chunk: int | None,
    chunk_overlap: int,
    tile: int | None,
    tile_overlap: int,
) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        described = (
            f"{frames.dtype} array of shape {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        )
        raise FTVSRError(f"super_resolve expects uint8 RGB frames of shape (t, h, w, 3), got {described}")
    if frames.shape[0] < 1:
        raise FTVSRError("super_resolve got an empty clip (t = 0)")
    if chunk is not None and (chunk < 1 or not 0 <= chunk_overlap < chunk):
        raise FTVSRError(
            f"super_resolve: need chunk >= 1 and 0 <= chunk_overlap < chunk, "
            f"got chunk={chunk}, chunk_overlap={chunk_overlap} (a chunk must be longer than the overlap)"
        )
    if tile is not None:
        min_size = getattr(model, "min_size", 1)
        if tile < min_size:
            raise FTVSRError(f"super_resolve: tile={tile} is smaller than the model's minimum frame size {min_size}")
        if not 0 <= tile_overlap < tile:
            raise FTVSRError(
                f"super_resolve: need 0 <= tile_overlap < tile, got tile={tile}, tile_overlap={tile_overlap}"
            )


def super_resolve(
    model: torch.nn.Module,
    frames: np.ndarray,
    *,
    chunk: int | None = None,
    chunk_overlap: int | None = None,
    tile: int | None = None,
    tile_overlap: int = TILE_OVERLAP,
    device: str | torch.device = "cpu",
    amp_dtype: torch.dtype | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Super-resolve `frames` 4x with `model`.

    frames: uint8 (t, h, w, 3) RGB. Returns uint8 (t, 4h, 4w, 3) RGB.
    chunk: frames per pass, at most (None: the whole clip); consecutive chunks share at least
    `chunk_overlap` frames (None: `CHUNK_OVERLAP`) and each frame comes from the chunk where it is most
    central.
    tile: LR tile size in pixels (None: whole frames); neighbouring tiles share `tile_overlap` pixels.
    device: where the model runs (the model is moved there; checked by `resolve_device`);
    amp_dtype: e.g. torch.bfloat16 for autocast (None: full precision). The model is run in eval
    mode and left in its former mode.
    """
    chunk_overlap = CHUNK_OVERLAP if chunk_overlap is None else chunk_overlap
    _check(model, frames, chunk, chunk_overlap, tile, tile_overlap)
    t, h, w, _ = frames.shape
    device = resolve_device(device)
    spans = chunk_spans(t, chunk, chunk_overlap, getattr(model, "keyframe_stride", 1))
    row_spans = windows(h, tile, tile_overlap)
    col_spans = windows(w, tile, tile_overlap)
    ramp = SCALE * tile_overlap
    result = np.empty((t, SCALE * h, SCALE * w, 3), dtype=np.uint8)

    was_training = model.training
    model.to(device).eval()
    autocast = (
        torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    )
    bar = tqdm(
        total=len(spans) * len(row_spans) * len(col_spans), desc="super-resolve", unit="pass", disable=not progress
    )
    try:
        # reuse_filters: the wide layers' transformed filters are computed once for all chunks and tiles
        with torch.inference_mode(), autocast, winograd.reuse_filters():
            for (start, end), (keep_start, keep_end) in zip(spans, _kept_ranges(spans), strict=True):
                clip = torch.from_numpy(frames[start:end]).permute(0, 3, 1, 2)  # (t', 3, h, w) uint8
                if len(row_spans) == 1 and len(col_spans) == 1:
                    out = _run(model, clip, device)
                    bar.update(1)
                else:
                    out = torch.zeros(end - start, 3, SCALE * h, SCALE * w)
                    weight_sum = torch.zeros(SCALE * h, SCALE * w)
                    for top, bottom in row_spans:
                        for left, right in col_spans:
                            tile_out = _run(model, clip[:, :, top:bottom, left:right], device)
                            weight = torch.outer(
                                _ramp(SCALE * top, SCALE * bottom, SCALE * h, ramp),
                                _ramp(SCALE * left, SCALE * right, SCALE * w, ramp),
                            )
                            rows = slice(SCALE * top, SCALE * bottom)
                            cols = slice(SCALE * left, SCALE * right)
                            out[:, :, rows, cols] += tile_out * weight
                            weight_sum[rows, cols] += weight
                            bar.update(1)
                    out /= weight_sum
                result[keep_start:keep_end] = to_uint8(out[keep_start - start : keep_end - start])
    finally:
        bar.close()
        model.train(was_training)
    return result


def _run(model: torch.nn.Module, clip: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (t, 3, h, w) -> float32 (t, 3, 4h, 4w) on the CPU."""
    lrs = clip.to(device).float().div_(255.0).unsqueeze(0)
    return model(lrs)[0].float().cpu()
