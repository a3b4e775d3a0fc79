"""LR frames -> H.264 at a CRF -> decoded LR frames, with the bitrate each clip took.

The published recipe (FTVSR README, "Dataset"):

    ffmpeg -i LR.mp4 -vcodec libx264 -crf CRFvalue LR_compressed.mp4

with CRF 15, 25 and 35 for training and testing. It names only the codec and the CRF, so
everything else is ffmpeg's default: preset ``medium``; the pixel format and frame rate of
``LR.mp4``, a file the README does not show how to make. The defaults here assume the
usual: ``yuv420p`` (what H.264 MP4s carry; note that ffmpeg would pick yuv444p if RGB
frames went straight into libx264) at 25 fps (ffmpeg's rate for image sequences).
RGB <-> YUV conversions use ffmpeg's default scaler flags, as ``ffmpeg -i x.mp4 %08d.png``
would. One addition pins reproducibility: the encoder runs on one thread (x264's bitstream
depends on its thread count); clips are encoded side by side instead.

Layout written by `compress_folder` for a set folder ``SRC/<clip>/<frame>.png``:

    DST/<clip>/<frame>.png    decoded frames, same names (as .png) and count as SRC/<clip>
    DST/<clip>.mp4            the compressed clip (kept unless keep_video=False)
    DST/<clip>.json           that clip's row of the table (written last: it marks the clip done)
    DST/bitrate.csv           one row per clip: see `ClipStats`

Clips with an odd width or height are padded (last row / column repeated) to even sizes
for subsampled pixel formats (yuv420p) and cropped back after decoding; the kept .mp4
holds the padded frames, the table the clip's own size.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ftvsr.data.degrade import png_name, set_clips
from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import write_text_atomic
from ftvsr.io.frames import list_frames, read_clip, write_clip
from ftvsr.io.parallel import map_clips
from ftvsr.io.video import SUBSAMPLED_PIX_FMTS, read_video, write_video

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pandas is imported where the table is built: spawned workers skip its 0.3 s import
    import pandas as pd

PUBLISHED_COMMAND = "ffmpeg -i LR.mp4 -vcodec libx264 -crf CRFvalue LR_compressed.mp4"
PUBLISHED_CRFS = (15, 25, 35)
DEFAULT_CODEC = "libx264"
DEFAULT_PRESET = "medium"
DEFAULT_PIX_FMT = "yuv420p"
DEFAULT_FPS = 25.0
TABLE_NAME = "bitrate.csv"


@dataclass(frozen=True)
class ClipStats:
    """One clip's compression: its size, the settings, the bytes it took and what it cost.

    ``bytes`` is the size of the whole .mp4 (container included); ``bitrate_kbps`` is
    ``bytes * 8 / 1000`` over the clip's duration ``frames / fps``; ``psnr_db`` compares the
    decoded frames with the input frames over the whole clip (RGB, 0..255; inf if identical).
    """

    clip: str
    frames: int
    width: int
    height: int
    crf: int
    bytes: int
    bitrate_kbps: float
    psnr_db: float
    codec: str
    preset: str
    pix_fmt: str
    fps: float


def check_crf(crf: int) -> int:
    """CRF must be an integer in 0..51 (x264's range for 8-bit video)."""
    if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
        raise FTVSRError(f"CRF must be an integer in 0..51, got {crf!r}")
    return int(crf)


def clip_psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB of `decoded` against `reference` (uint8, same shape) over all their pixels."""
    mse = np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _pad_even(frames: np.ndarray) -> np.ndarray:
    """Repeat the last row / column so both sizes are even (4:2:0 chroma needs it)."""
    _, h, w, _ = frames.shape
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def compress_clip(
    frames: np.ndarray,
    crf: int,
    codec: str = DEFAULT_CODEC,
    preset: str = DEFAULT_PRESET,
    pix_fmt: str = DEFAULT_PIX_FMT,
    fps: float = DEFAULT_FPS,
    video_path: str | os.PathLike | None = None,
    clip: str = "",
) -> tuple[np.ndarray, ClipStats]:
    """Encode uint8 ``(t, h, w, 3)`` RGB `frames` at `crf` and decode them back.

    Returns the decoded frames (uint8, same shape as `frames`) and the clip's `ClipStats`
    (named `clip`). The video is written to `video_path` (atomically) if given, otherwise
    to a temporary file that is removed.
    """
    crf = check_crf(crf)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[0] == 0:
        raise FTVSRError(f"clip {clip}: expected uint8 (t, h, w, 3) RGB frames, got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    padded = _pad_even(frames) if pix_fmt in SUBSAMPLED_PIX_FMTS else frames
    with tempfile.TemporaryDirectory(prefix="ftvsr-compress-") as scratch:
        path = Path(video_path) if video_path is not None else Path(scratch) / "clip.mp4"
        size = write_video(path, padded, crf, codec=codec, preset=preset, pix_fmt=pix_fmt, fps=fps)
        decoded = read_video(path)
    if decoded.shape[0] != t or decoded.shape[1:3] != padded.shape[1:3]:
        raise FTVSRError(
            f"clip {clip}: decoding {path.name} gave {decoded.shape[0]} frames of "
            f"{decoded.shape[2]}x{decoded.shape[1]}, expected {t} of {padded.shape[2]}x{padded.shape[1]}"
        )
    decoded = np.ascontiguousarray(decoded[:, :h, :w])
    stats = ClipStats(
        clip=clip,
        frames=t,
        width=w,
        height=h,
        crf=crf,
        bytes=size,
        bitrate_kbps=size * 8 / 1000 / (t / fps),
        psnr_db=clip_psnr(frames, decoded),
        codec=codec,
        preset=preset,
        pix_fmt=pix_fmt,
        fps=float(fps),
    )
    return decoded, stats


def _settings(stats: ClipStats) -> tuple:
    return (stats.crf, stats.codec, stats.preset, stats.pix_fmt, stats.fps)


def load_clip_stats(dst: str | os.PathLike, clip: str) -> ClipStats | None:
    """The row ``dst/<clip>.json`` of a compressed clip, or None when it is missing or unreadable."""
    try:
        return ClipStats(**json.loads((Path(dst) / f"{clip}.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def clip_is_done(
    src_clip: str | os.PathLike,
    dst: str | os.PathLike,
    crf: int,
    codec: str = DEFAULT_CODEC,
    preset: str = DEFAULT_PRESET,
    pix_fmt: str = DEFAULT_PIX_FMT,
    fps: float = DEFAULT_FPS,
    keep_video: bool = True,
) -> bool:
    """True when `src_clip` was compressed into `dst` with these settings (a finished, resumable clip).

    Done = the stats sidecar (written last) agrees on the settings, and the frames and video are there.
    """
    src_clip, dst = Path(src_clip), Path(dst)
    clip = src_clip.name
    stats = load_clip_stats(dst, clip)
    if stats is None or _settings(stats) != (crf, codec, preset, pix_fmt, float(fps)):
        return False
    if keep_video and not (dst / f"{clip}.mp4").is_file():
        return False
    try:
        done = [p.name for p in list_frames(dst / clip)]
    except FTVSRError:
        return False
    return done == [png_name(p.name) for p in list_frames(src_clip)]


def write_bitrate_table(dst: str | os.PathLike, clips: list[str]) -> pd.DataFrame:
    """The per-clip table of the compressed `clips` in `dst` (their ``.json`` rows), written to ``dst/bitrate.csv``.

    Raises FTVSRError naming the first clip without its row (not compressed yet).
    """
    import pandas as pd

    dst = Path(dst)
    rows = []
    for clip in clips:
        stats = load_clip_stats(dst, clip)
        if stats is None:
            raise FTVSRError(f"clip {clip} has no compression record {dst / (clip + '.json')}: compress it first")
        rows.append(dataclasses.asdict(stats))
    table = pd.DataFrame(rows, columns=[f.name for f in dataclasses.fields(ClipStats)])
    text, path = table.to_csv(index=False), dst / TABLE_NAME
    if not (path.is_file() and path.read_text() == text):  # unchanged: keep the file (and its mtime)
        write_text_atomic(path, text)
    return table


def compress_clip_folder(
    src_clip: str | os.PathLike,
    dst: str | os.PathLike,
    crf: int,
    codec: str = DEFAULT_CODEC,
    preset: str = DEFAULT_PRESET,
    pix_fmt: str = DEFAULT_PIX_FMT,
    fps: float = DEFAULT_FPS,
    keep_video: bool = True,
) -> ClipStats:
    """Compress the clip folder `src_clip` into ``dst/<clip>/``, ``dst/<clip>.mp4`` and ``dst/<clip>.json``."""
    src_clip, dst = Path(src_clip), Path(dst)
    clip = src_clip.name
    names = [png_name(p.name) for p in list_frames(src_clip)]
    frames = read_clip(src_clip)
    video_path = dst / f"{clip}.mp4" if keep_video else None
    decoded, stats = compress_clip(frames, crf, codec, preset, pix_fmt, fps, video_path=video_path, clip=clip)
    write_clip(dst / clip, decoded, names)
    write_text_atomic(dst / f"{clip}.json", json.dumps(dataclasses.asdict(stats), indent=1) + "\n")
    log.info(
        "%s: CRF %d, %.1f kbit/s, PSNR %.2f dB against its input (%d frames)",
        src_clip,
        crf,
        stats.bitrate_kbps,
        stats.psnr_db,
        stats.frames,
    )
    return stats


def compress_folder(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    crf: int,
    codec: str = DEFAULT_CODEC,
    preset: str = DEFAULT_PRESET,
    pix_fmt: str = DEFAULT_PIX_FMT,
    fps: float = DEFAULT_FPS,
    workers: int = 1,
    keep_video: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Compress every clip of the set folder `src` at `crf` into `dst` (layout: module docstring).

    Clips run in parallel on `workers` processes; every output is written atomically and
    clips already done with the same settings are skipped, so an interrupted run finishes
    where it stopped. Returns the per-clip table (columns: the fields of `ClipStats`,
    sorted by clip), also written to ``dst/bitrate.csv``.
    """
    # Everything that can be checked up front fails before anything is written.
    crf = check_crf(crf)
    if workers < 1:
        raise FTVSRError(f"workers must be >= 1, got {workers}")
    src, dst = Path(src), Path(dst)
    clips = set_clips(src)
    todo = [c for c in clips if not clip_is_done(src / c, dst, crf, codec, preset, pix_fmt, fps, keep_video)]
    dst.mkdir(parents=True, exist_ok=True)
    jobs = {c: (src / c, dst, crf, codec, preset, pix_fmt, float(fps), keep_video) for c in todo}
    map_clips(compress_clip_folder, jobs, workers=workers, progress=progress, desc=f"compress crf {crf}")
    return write_bitrate_table(dst, clips)
