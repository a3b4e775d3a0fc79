"""Video: probe and decode to uint8 RGB frames with PyAV, encode frames at a CRF with ffmpeg.

Reading goes through PyAV (libav* in-process): `probe_video` reads the first video stream's
size and rate from the container and counts its packets; `iter_video` / `read_video` decode
and convert to rgb24 through a libavfilter graph, the conversion the ffmpeg command line
applies for ``-pix_fmt rgb24`` (swscale, BT.601 unless the stream says otherwise). The pixels
are the ones the earlier ``ffmpeg -f rawvideo -pix_fmt rgb24`` subprocess gave, bit for bit,
on the embedded sample videos and on clips `write_video` encodes (yuv420p/422p/444p, 8 and
10 bit; ``tests/test_video.py`` checks it against the ffmpeg binary). PyAV's errors become
FTVSRError naming the file.

Encoding stays a subprocess: the ffmpeg binary shipped inside the ``imageio-ffmpeg`` wheel
(``imageio_ffmpeg.get_ffmpeg_exe()``), so the x264 bitstream does not depend on a system
ffmpeg; the command is built with ``ffmpeg-python``.

Frames are uint8 ``(h, w, 3)`` RGB; a clip is ``(t, h, w, 3)``. RGB <-> YUV conversions are
ffmpeg's defaults (BT.601), the same both ways.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.filter
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


def _reason(error: Exception) -> str:
    """One line for a PyAV error: libav's message without the errno and file name PyAV adds."""
    reason = str(getattr(error, "strerror", None) or error).strip()
    return reason.splitlines()[0] if reason else type(error).__name__


def _open(path: Path) -> av.container.InputContainer:
    """Open `path` for reading; FTVSRError naming it when it is missing or not a media file."""
    if not path.is_file():
        raise FTVSRError(f"video not found: {path}")
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as e:
        raise FTVSRError(f"cannot open video {path}: {_reason(e)}") from e


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    if not container.streams.video:
        raise FTVSRError(f"no video stream in {path}")
    return container.streams.video[0]


def _packets(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> Iterator[av.Packet]:
    """The stream's packets, then the empty one that flushes the decoder; FTVSRError at a damaged one.

    The demuxer flags a packet it could only read in part (a truncated file) as corrupt
    rather than failing: the ffmpeg command line's ``-xerror`` stops there too.
    """
    for index, packet in enumerate(container.demux(stream)):
        if packet.is_corrupt:
            raise FTVSRError(f"reading {path}: packet {index} of its video stream is truncated or corrupt")
        yield packet


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Size, frame count and frame rate of the first video stream of `path`.

    The count is the number of the stream's packets (one per frame), read through the whole
    file without decoding: exact for any container, and a truncated file fails here. The
    rate is the stream's average frame rate (its base rate when the container has none; NaN
    when neither is known). Raises FTVSRError naming the file when it is missing, not a media
    file, has no video stream or cannot be read to its end.
    """
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.base_rate
        try:
            num_frames = sum(1 for packet in _packets(container, stream, path) if packet.size)
        except av.error.FFmpegError as e:
            raise FTVSRError(f"probing video {path} failed: {_reason(e)}") from e
    if width <= 0 or height <= 0:
        raise FTVSRError(f"cannot read the size of the video stream in {path}")
    return VideoInfo(width=width, height=height, num_frames=num_frames, fps=float(rate) if rate else float("nan"))


def _rgb_graph(stream: av.VideoStream) -> av.filter.Graph:
    """A filter graph converting the stream's frames to rgb24.

    Conversion goes through libavfilter's format negotiation, as the ffmpeg command line's
    ``-pix_fmt rgb24`` does: same swscale settings, same pixels (`VideoFrame.to_ndarray`'s own
    conversion differs for 10-bit input).
    """
    graph = av.filter.Graph()
    graph.link_nodes(graph.add_buffer(template=stream), graph.add("format", "rgb24"), graph.add("buffersink"))
    graph.configure()
    return graph


def iter_video(path: str | os.PathLike, max_frames: int | None = None, threads: int = 1) -> Iterator[np.ndarray]:
    """Decode `path` frame by frame: uint8 ``(h, w, 3)`` RGB arrays, at most `max_frames`.

    Strict: a truncated or damaged packet, a decoding error, a frame the decoder had to conceal
    (flagged corrupt) or a frame whose size differs from the stream's raises FTVSRError naming
    the file; so does a file that yields no frame. Closing the iterator early closes the file.
    `threads` is the decoder's thread count (0: one per core). The pixels do not depend on it,
    but with frame threads libavcodec flags concealed frames racily, so a damaged file can pass
    one run and fail the next: the default 1 gives the same verdict every time (parallelism
    comes from decoding clips side by side).
    """
    path = Path(path)
    if max_frames is not None and max_frames < 1:
        raise FTVSRError(f"max_frames must be >= 1, got {max_frames}")
    if threads < 0:
        raise FTVSRError(f"threads must be >= 0, got {threads}")
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.codec_context.thread_count = threads
        if threads != 1:
            stream.thread_type = "AUTO"  # frame and slice threads
        width, height = stream.codec_context.width, stream.codec_context.height
        try:
            graph = _rgb_graph(stream)
        except av.error.FFmpegError as e:
            raise FTVSRError(f"cannot convert the {width}x{height} video of {path} to RGB: {_reason(e)}") from e
        frames = (frame for packet in _packets(container, stream, path) for frame in packet.decode())
        count = 0
        while max_frames is None or count < max_frames:
            try:
                frame = next(frames, None)
                if frame is None:
                    break
                if frame.is_corrupt:
                    raise FTVSRError(f"decoding {path}: frame {count} is corrupt")
                if (frame.width, frame.height) != (width, height):
                    raise FTVSRError(
                        f"decoding {path}: frame {count} is {frame.width}x{frame.height}, the stream {width}x{height}"
                    )
                graph.vpush(frame)
                rgb = np.ascontiguousarray(graph.vpull().to_ndarray())
            except av.error.FFmpegError as e:
                raise FTVSRError(f"decoding {path} failed after {count} frames: {_reason(e)}") from e
            yield rgb
            count += 1
        if count == 0:
            raise FTVSRError(f"no frames decoded from {path}")


def read_video(path: str | os.PathLike, max_frames: int | None = None, threads: int = 1) -> np.ndarray:
    """Decode the first video stream of `path` to uint8 ``(t, h, w, 3)`` RGB (at most `max_frames`).

    `threads` as for `iter_video`.
    """
    return np.stack(list(iter_video(path, max_frames, threads)))


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
    _, h, w, _ = frames.shape
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
