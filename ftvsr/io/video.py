"""Video through ffmpeg: probe, decode to uint8 RGB frames, encode frames at a CRF.

The ffmpeg binary is the one shipped inside the ``imageio-ffmpeg`` wheel
(``imageio_ffmpeg.get_ffmpeg_exe()``), so results do not depend on a system ffmpeg; commands
are built with ``ffmpeg-python``. That wheel ships no ``ffprobe``: `probe_video` reads the
stream line of ``ffmpeg -i`` and counts packets with a stream copy.

Frames are uint8 ``(h, w, 3)`` RGB; a clip is ``(t, h, w, 3)``. RGB <-> YUV conversions are
ffmpeg's defaults (BT.601), the same both ways.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import imageio_ffmpeg
import numpy as np

from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import atomic_path

# Container by suffix: atomic writes go to a `.tmp` name, so ffmpeg must be told the format.
CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".avi": "avi"}
# Pixel formats whose chroma is subsampled horizontally and vertically / horizontally only.
_EVEN_BOTH = {"yuv420p", "yuvj420p", "nv12", "yuv420p10le"}
_EVEN_WIDTH = {"yuv422p", "yuvj422p", "yuv422p10le"}
SUBSAMPLED_PIX_FMTS = frozenset(_EVEN_BOTH | _EVEN_WIDTH)


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg."""
    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` finds: the first video stream's size, frame count and frame rate."""

    width: int
    height: int
    num_frames: int
    fps: float


def _last_line(stderr: bytes | str | None) -> str:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else (stderr or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "no message from ffmpeg"
    return re.sub(r"^(\[[^\]]*\]\s*)+", "", lines[-1])  # drop "[h264 @ 0x...]" prefixes


def _run(stream: ffmpeg.nodes.OutputStream, what: str, path: Path, input: bytes | None = None) -> str:
    """Run a compiled ffmpeg command; its stderr, or FTVSRError naming `path` with ffmpeg's last line."""
    args = stream.compile(cmd=ffmpeg_exe())
    try:
        done = subprocess.run(args, input=input, capture_output=True, check=False)
    except OSError as e:
        raise FTVSRError(f"cannot run ffmpeg ({args[0]}): {e}") from e
    if done.returncode != 0:
        raise FTVSRError(f"{what} {path} failed: {_last_line(done.stderr)}")
    return done.stderr.decode(errors="replace")


_STREAM_LINE = re.compile(r"Stream #\d+:\d+.*?: Video: (?P<rest>.*)")
_SIZE = re.compile(r"(?<![\dx])(\d{1,5})x(\d{1,5})(?![\dx])")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
_FRAME_COUNT = re.compile(r"frame=\s*(\d+)")


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Size, frame count and frame rate of the first video stream of `path`.

    The size and rate come from ``ffmpeg -i``; the count from copying the stream to the null
    muxer (one packet per frame; no decoding). Raises FTVSRError naming the file, with
    ffmpeg's last message, when it has no readable video stream.
    """
    path = Path(path)
    if not path.is_file():
        raise FTVSRError(f"video not found: {path}")
    # `ffmpeg -i` alone always exits 1 ("at least one output file must be specified"); the
    # stream copy both validates the file and counts its packets.
    stream = (
        ffmpeg.input(str(path))
        .output("-", format="null", map="0:v:0", c="copy")
        .global_args("-hide_banner", "-nostdin")
    )
    log = _run(stream, "probing video", path)
    match = next((m for m in map(_STREAM_LINE.search, log.splitlines()) if m), None)
    if match is None:
        raise FTVSRError(f"no video stream in {path}: {_last_line(log)}")
    size, rate = _SIZE.search(match["rest"]), _FPS.search(match["rest"])
    counts = _FRAME_COUNT.findall(log)
    if size is None or not counts:
        raise FTVSRError(f"cannot read the size or frame count of {path}: {match.group(0).strip()}")
    fps = float(rate[1]) * (1000 if rate[2] else 1) if rate else float("nan")
    return VideoInfo(width=int(size[1]), height=int(size[2]), num_frames=int(counts[-1]), fps=fps)


def iter_video(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decode `path` frame by frame: uint8 ``(h, w, 3)`` RGB arrays, at most `max_frames`.

    Decoding errors stop ffmpeg (``-xerror``) and raise FTVSRError naming the file with
    ffmpeg's last message; so does a file that yields no frame.
    """
    path = Path(path)
    info = probe_video(path)
    frame_bytes = info.width * info.height * 3
    options = {"format": "rawvideo", "pix_fmt": "rgb24", "map": "0:v:0"}
    if max_frames is not None:
        if max_frames < 1:
            raise FTVSRError(f"max_frames must be >= 1, got {max_frames}")
        options["frames:v"] = max_frames
    stream = (
        ffmpeg.input(str(path))
        .output("pipe:", **options)
        .global_args("-hide_banner", "-nostdin", "-v", "error", "-xerror")
    )
    args = stream.compile(cmd=ffmpeg_exe())
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stderr_chunks: list[bytes] = []
    # Drain stderr on the side: a decoder that logs a lot would otherwise fill the pipe and stall.
    drain = threading.Thread(target=lambda: stderr_chunks.append(process.stderr.read()), daemon=True)
    drain.start()
    count = 0
    try:
        while True:
            data = process.stdout.read(frame_bytes)
            if not data:
                break
            if len(data) < frame_bytes:
                process.wait()
                drain.join()
                raise FTVSRError(f"decoding {path}: truncated frame {count}: {_last_line(b''.join(stderr_chunks))}")
            yield np.frombuffer(data, dtype=np.uint8).reshape(info.height, info.width, 3)
            count += 1
        process.wait()
        drain.join()
        if process.returncode != 0:
            raise FTVSRError(f"decoding {path} failed after {count} frames: {_last_line(b''.join(stderr_chunks))}")
        if count == 0:
            raise FTVSRError(f"no frames decoded from {path}: {_last_line(b''.join(stderr_chunks))}")
    finally:
        if process.poll() is None:  # the caller stopped early: stop ffmpeg too
            process.kill()
            process.wait()
        process.stdout.close()
        drain.join()
        process.stderr.close()


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> np.ndarray:
    """Decode the first video stream of `path` to uint8 ``(t, h, w, 3)`` RGB (at most `max_frames`)."""
    return np.stack(list(iter_video(path, max_frames)))


def check_even_size(width: int, height: int, pix_fmt: str, what: str) -> None:
    """Chroma-subsampled formats need even sizes (yuv420p: both, yuv422p: width)."""
    if pix_fmt in _EVEN_BOTH and (width % 2 or height % 2):
        raise FTVSRError(f"{what}: {pix_fmt} needs an even width and height, got {width}x{height} (pad first)")
    if pix_fmt in _EVEN_WIDTH and width % 2:
        raise FTVSRError(f"{what}: {pix_fmt} needs an even width, got {width}")


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    crf: int,
    codec: str = "libx264",
    preset: str = "medium",
    pix_fmt: str = "yuv420p",
    fps: float = 25,
    threads: int = 1,
) -> int:
    """Encode uint8 ``(t, h, w, 3)`` RGB `frames` to `path` at constant rate factor `crf` (atomic).

    The container follows the suffix (.mp4, .mkv, .mov, .avi). `threads` is the encoder's
    thread count: x264's output depends on it, so the default 1 makes the bitstream the same
    on every machine (parallelism comes from encoding clips side by side). Returns the
    file's size in bytes. Raises FTVSRError for a CRF outside 0..51, odd sizes with a
    subsampled `pix_fmt`, or an ffmpeg failure (with its last message).
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[0] == 0:
        raise FTVSRError(f"{path}: expected uint8 (t, h, w, 3) RGB frames, got {frames.dtype} {frames.shape}")
    if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
        raise FTVSRError(f"CRF must be an integer in 0..51, got {crf!r}")
    container = CONTAINERS.get(path.suffix.lower())
    if container is None:
        raise FTVSRError(f"unknown video container for {path} (use one of {', '.join(CONTAINERS)})")
    t, h, w, _ = frames.shape
    check_even_size(w, h, pix_fmt, str(path))
    with atomic_path(path) as tmp:
        stream = (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps)
            .output(
                str(tmp), format=container, vcodec=codec, crf=int(crf), preset=preset, pix_fmt=pix_fmt, threads=threads
            )
            .global_args("-hide_banner", "-v", "error")
            .overwrite_output()
        )
        _run(stream, "encoding video", path, input=np.ascontiguousarray(frames).tobytes())
        size = tmp.stat().st_size
    return size
