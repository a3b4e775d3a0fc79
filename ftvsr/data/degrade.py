"""HR frames -> LR frames: the two published degradations, frame by frame and folder by folder.

* **BD** (blur-downsample), ``degradation/BD_degradation.m``: a 12x12 Gaussian of sigma 1.6
  (size ``ceil(3 * sigma) * 2 + 2``: even), ``imfilter(img, kernel, 'replicate')`` on the
  uint8 image, then rows and columns ``scale/2 : scale : end - scale/2`` (1-based).
* **BI** (bicubic), ``degradation/BI_degradation.m``: ``imresize(im2double(img), 1/scale)``
  written as uint8.

``degrade_folder`` maps one of them over every clip of a set folder, clips in parallel,
each clip written atomically, clips already done skipped.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ftvsr.data.imresize import imresize
from ftvsr.errors import FTVSRError
from ftvsr.io.frames import list_clips, list_frames, read_frame, write_clip
from ftvsr.io.parallel import map_clips

log = logging.getLogger(__name__)

BD_SIGMA = 1.6
METHODS = ("bd", "bi")


def bd_kernel_size(sigma: float = BD_SIGMA) -> int:
    """The published kernel size ``ceil(3 * sigma) * 2 + 2`` (12 for sigma 1.6)."""
    return math.ceil(3 * sigma) * 2 + 2


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)``, float64, sums to 1.

    fspecial samples ``exp(-(x^2 + y^2) / (2 sigma^2))`` at ``x, y = -(size-1)/2 ... (size-1)/2``
    and normalises; that is exactly ``outer(g, g)`` for this ``g``.
    """
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _filter_and_sample(img: np.ndarray, axis: int, kernel: np.ndarray, scale: int) -> np.ndarray:
    """Correlate along `axis` with replicate padding, evaluated only at the kept samples.

    MATLAB's imfilter puts the centre of a kernel of size k at (1-based) ``floor((k + 1) / 2)``:
    output ``i`` (0-based) reads inputs ``i - c .. i - c + k - 1`` with ``c = floor((k - 1) / 2)``
    (5 for k = 12: one more tap after the centre than before it). Kept outputs are the
    0-based ``scale/2 - 1, scale/2 - 1 + scale, ...`` up to ``n - scale/2 - 1``.
    """
    n = img.shape[axis]
    keep = np.arange(scale // 2 - 1, n - scale // 2, scale)
    centre = (kernel.size - 1) // 2
    taps = keep[:, None] - centre + np.arange(kernel.size)[None, :]
    taps = np.clip(taps, 0, n - 1)  # 'replicate' padding
    source = np.moveaxis(img, axis, 0)
    out = np.zeros((keep.size, *source.shape[1:]), dtype=np.float64)
    for k in range(kernel.size):
        out += kernel[k] * source[taps[:, k]]
    return np.moveaxis(out, 0, axis)


def _check_hr(hr: np.ndarray) -> None:
    if not isinstance(hr, np.ndarray) or hr.dtype != np.uint8 or hr.ndim != 3 or hr.shape[2] != 3:
        desc = f"{hr.dtype} {hr.shape}" if isinstance(hr, np.ndarray) else type(hr).__name__
        raise FTVSRError(f"expected a uint8 (h, w, 3) RGB frame, got {desc}")


def bd_degrade(hr: np.ndarray, scale: int = 4, sigma: float = BD_SIGMA) -> np.ndarray:
    """BD degradation of one uint8 ``(h, w, 3)`` frame -> uint8 ``(h', w', 3)``, as ``BD_degradation.m``.

    For h divisible by `scale`, ``h' = h / scale``. The Gaussian is separable, so the filter
    runs as two 1-D passes in float64 and only at the rows and columns that are kept; the
    result is rounded to uint8 as MATLAB does (half away from zero, saturating).
    """
    _check_hr(hr)
    if scale < 2 or scale % 2:
        raise FTVSRError(f"BD degradation needs an even scale (the published sampling starts at scale/2), got {scale}")
    size = bd_kernel_size(sigma)
    h, w = hr.shape[:2]
    if h < size or w < size:
        raise FTVSRError(f"frame {w}x{h} is smaller than the {size}x{size} BD blur kernel")
    kernel = gaussian_kernel_1d(size, sigma)
    rows = _filter_and_sample(hr, 0, kernel, scale)  # float64 from here: uint8 * float64 weight
    lr = _filter_and_sample(rows, 1, kernel, scale)
    return np.floor(np.clip(lr, 0, 255) + 0.5).astype(np.uint8)


def bi_degrade(hr: np.ndarray, scale: int = 4) -> np.ndarray:
    """BI degradation of one uint8 ``(h, w, 3)`` frame: MATLAB bicubic ``imresize`` by ``1/scale``.

    As ``BI_degradation.m``: resized in float64 from ``img / 255`` (im2double), then written
    as uint8 (``round(255 * x)``, saturating). Output ``ceil(h / scale) x ceil(w / scale)``.
    """
    _check_hr(hr)
    if scale < 1:
        raise FTVSRError(f"scale must be a positive integer, got {scale}")
    lr = imresize(hr.astype(np.float64) / 255.0, 1.0 / scale)
    return np.floor(np.clip(lr * 255.0, 0, 255) + 0.5).astype(np.uint8)


def degrade_frame(hr: np.ndarray, method: str = "bd", scale: int = 4) -> np.ndarray:
    """Apply the degradation named `method` (``"bd"`` or ``"bi"``) to one frame."""
    return _degradation(method)(hr, scale)


def _degradation(method: str) -> Callable[[np.ndarray, int], np.ndarray]:
    if method == "bd":
        return bd_degrade
    if method == "bi":
        return bi_degrade
    raise FTVSRError(f"unknown degradation method {method!r} (use one of {', '.join(METHODS)})")


def png_name(source_name: str) -> str:
    """Output frames are PNG whatever the source format (a lossy output would degrade twice)."""
    return Path(source_name).stem + ".png"


def set_clips(src: str | os.PathLike) -> list[str]:
    """The clips of the set folder `src`, sorted, each checked to hold only image frames.

    Raises FTVSRError naming the folder for a missing set, an empty clip or a stray file
    among the frames, so a stage fails before it writes anything.
    """
    src = Path(src)
    clips = list_clips(src)
    for clip in clips:
        list_frames(src / clip)
    return clips


def clip_is_done(src_clip: str | os.PathLike, dst_clip: str | os.PathLike) -> bool:
    """True when `dst_clip` holds the degraded frames of `src_clip` (a finished, resumable clip).

    A clip folder appears only whole (atomic write), so matching frame names means done.
    """
    src_clip, dst_clip = Path(src_clip), Path(dst_clip)
    if not dst_clip.is_dir():
        return False
    try:
        done = [p.name for p in list_frames(dst_clip)]
    except FTVSRError:
        return False
    return done == [png_name(p.name) for p in list_frames(src_clip)]


def degrade_clip(src_clip: str | os.PathLike, dst_clip: str | os.PathLike, method: str = "bd", scale: int = 4) -> int:
    """Degrade every frame of the clip folder `src_clip` into `dst_clip` (written atomically).

    Returns the number of frames. Raises FTVSRError naming the file for an unreadable frame,
    a frame whose size differs from the clip's first frame, or one too small to degrade.
    """
    degrade = _degradation(method)
    src_clip, dst_clip = Path(src_clip), Path(dst_clip)
    paths = list_frames(src_clip)
    frames, first_shape = [], None
    for path in paths:
        hr = read_frame(path)
        if first_shape is None:
            first_shape = hr.shape
        elif hr.shape != first_shape:
            raise FTVSRError(
                f"frame size {hr.shape[1]}x{hr.shape[0]} of {path} differs from "
                f"{first_shape[1]}x{first_shape[0]} of {paths[0]} (one clip, one size)"
            )
        try:
            frames.append(degrade(hr, scale))
        except FTVSRError as e:
            raise FTVSRError(f"{path}: {e}") from e
    write_clip(dst_clip, frames, [png_name(p.name) for p in paths])
    log.info("%s: %d frames degraded (%s x%d) into %s", src_clip, len(paths), method, scale, dst_clip)
    return len(paths)


def degrade_folder(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    method: str = "bd",
    scale: int = 4,
    workers: int = 1,
    progress: bool = True,
) -> list[str]:
    """Degrade every clip of the set folder `src` into `dst` with the same layout.

    ``dst/<clip>/<frame>.png`` for each ``src/<clip>/<frame>.<ext>``. Clips run in parallel
    on `workers` processes; each clip folder is written atomically, and clips already
    complete in `dst` are skipped, so an interrupted run finishes where it stopped.
    Returns the names of the clips degraded in this call. Errors from any clip raise
    FTVSRError naming the clip or file.
    """
    # Everything that can be checked up front fails before anything is written.
    _degradation(method)
    if workers < 1:
        raise FTVSRError(f"workers must be >= 1, got {workers}")
    src, dst = Path(src), Path(dst)
    clips = set_clips(src)
    todo = [c for c in clips if not clip_is_done(src / c, dst / c)]
    dst.mkdir(parents=True, exist_ok=True)
    jobs = {c: (src / c, dst / c, method, scale) for c in todo}
    map_clips(degrade_clip, jobs, workers=workers, progress=progress, desc=f"degrade {method}")
    return todo
