from __future__ import annotations

import random
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from ftvsr.data.sample import sample_video_path
from ftvsr.errors import FTVSRError
from ftvsr.io.video import ffmpeg_exe, iter_video, probe_video, read_video, write_video


def _smooth_clip(t: int = 6, h: int = 32, w: int = 48) -> np.ndarray:
    """A smooth pattern moving one pixel per frame: compresses well, each frame distinct.

    Mostly luma with gentle colour, like natural video: 4:2:0 chroma costs little on it.
    """
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(t):
        luma = 128 + 70 * np.sin(2 * np.pi * (xx + i) / 24) * np.cos(2 * np.pi * (yy - i) / 20)
        tint = 20 * np.sin(2 * np.pi * (xx + yy) / 64)
        frames.append(np.stack([luma + tint, luma, luma - tint], axis=-1))
    return np.clip(np.round(frames), 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / mse)


def test_bundled_ffmpeg_is_used() -> None:
    assert "imageio_ffmpeg" in ffmpeg_exe()


def test_write_probe_read_roundtrip(tmp_path: Path) -> None:
    clip = _smooth_clip()
    size = write_video(tmp_path / "v.mp4", clip, crf=0, fps=25)
    assert size == (tmp_path / "v.mp4").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
    info = probe_video(tmp_path / "v.mp4")
    assert (info.width, info.height, info.num_frames, info.fps) == (48, 32, 6, 25.0)
    decoded = read_video(tmp_path / "v.mp4")
    assert decoded.shape == clip.shape and decoded.dtype == np.uint8
    assert _psnr(decoded, clip) > 38  # lossless luma; the loss is 4:2:0 chroma and YUV rounding
    # frames come back in order: each decoded frame is closest to its own source frame
    for i in range(len(clip)):
        errors = [np.abs(decoded[i].astype(int) - c).mean() for c in clip]
        assert int(np.argmin(errors)) == i
    assert read_video(tmp_path / "v.mp4", max_frames=2).shape == (2, 32, 48, 3)
    np.testing.assert_array_equal(read_video(tmp_path / "v.mp4", max_frames=2), decoded[:2])


def test_encoding_is_deterministic(tmp_path: Path) -> None:
    clip = _smooth_clip()
    write_video(tmp_path / "a.mp4", clip, crf=30)
    write_video(tmp_path / "b.mp4", clip, crf=30)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_reads_the_sample_videos() -> None:
    info = probe_video(sample_video_path("carphone_pristine"))
    assert (info.width, info.height, info.num_frames) == (176, 144, 120)
    assert info.fps == pytest.approx(30000 / 1001)
    frames = read_video(sample_video_path("carphone_pristine"), max_frames=3)
    assert frames.shape == (3, 144, 176, 3) and frames.std() > 10


def test_iter_video_stops_early_without_leaking(tmp_path: Path) -> None:
    write_video(tmp_path / "v.mp4", _smooth_clip(10), crf=20)
    it = iter_video(tmp_path / "v.mp4")
    first = next(it)
    it.close()  # kills the ffmpeg process
    assert first.shape == (32, 48, 3)


def test_missing_and_garbage_video(tmp_path: Path) -> None:
    with pytest.raises(FTVSRError, match="not found"):
        read_video(tmp_path / "nope.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"definitely not a video" * 10)
    with pytest.raises(FTVSRError, match=r"junk\.mp4.*Invalid data"):
        read_video(tmp_path / "junk.mp4")


def test_truncated_video(tmp_path: Path) -> None:
    write_video(tmp_path / "v.mp4", _smooth_clip(), crf=20)
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(FTVSRError, match=r"cut\.mp4"):
        read_video(tmp_path / "cut.mp4")


def test_video_corrupted_in_the_middle(tmp_path: Path) -> None:
    # The header is intact, the coded frames are not: decoding errors must not pass silently.
    data = bytearray(sample_video_path("carphone_pristine").read_bytes())
    rng = random.Random(0)
    for i in range(300_000, 302_000):
        data[i] = rng.randrange(256)
    (tmp_path / "mid.mp4").write_bytes(bytes(data))
    with pytest.raises(FTVSRError, match=r"mid\.mp4"):
        read_video(tmp_path / "mid.mp4")


def test_write_video_bad_inputs_leave_nothing(tmp_path: Path) -> None:
    clip = _smooth_clip()
    for crf in (-1, 52, 25.5, True):
        with pytest.raises(FTVSRError, match="CRF"):
            write_video(tmp_path / "v.mp4", clip, crf=crf)
    with pytest.raises(FTVSRError, match="even"):
        write_video(tmp_path / "v.mp4", clip[:, :31], crf=25)
    with pytest.raises(FTVSRError, match="container"):
        write_video(tmp_path / "v.webm2", clip, crf=25)
    with pytest.raises(FTVSRError, match="uint8"):
        write_video(tmp_path / "v.mp4", clip.astype(np.float32), crf=25)
    with pytest.raises(FTVSRError, match=r"v\.mp4"):  # ffmpeg itself fails: unknown encoder
        write_video(tmp_path / "v.mp4", clip, crf=25, codec="no_such_codec")
    assert list(tmp_path.iterdir()) == []


def test_odd_size_without_subsampling_is_fine(tmp_path: Path) -> None:
    clip = _smooth_clip(3, 25, 29)
    write_video(tmp_path / "v.mkv", clip, crf=0, pix_fmt="yuv444p")
    decoded = read_video(tmp_path / "v.mkv")
    assert decoded.shape == clip.shape
    assert _psnr(decoded, clip) > 40


def _ffmpeg_rgb(path: Path, width: int, height: int) -> np.ndarray:
    """All frames of `path` as the ffmpeg binary decodes them to rgb24 (the reference pixels)."""
    args = [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v:0"]
    done = subprocess.run([*args, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"], capture_output=True, check=True)
    return np.frombuffer(done.stdout, dtype=np.uint8).reshape(-1, height, width, 3)


def _noisy_clip(t: int = 4, h: int = 40, w: int = 56) -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.clip(_smooth_clip(t, h, w).astype(int) + rng.integers(-30, 30, (t, h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("name", "pix_fmt"),
    [("v.mp4", "yuv420p"), ("v.mkv", "yuv422p"), ("v.mov", "yuv444p"), ("v.mp4", "yuv420p10le")],
)
def test_decoded_pixels_are_the_ffmpeg_binarys(tmp_path: Path, name: str, pix_fmt: str) -> None:
    # The compressed datasets, the evaluation numbers and dvc.lock rest on these exact pixels.
    write_video(tmp_path / name, _noisy_clip(), crf=10, pix_fmt=pix_fmt)
    np.testing.assert_array_equal(read_video(tmp_path / name), _ffmpeg_rgb(tmp_path / name, 56, 40))


def test_decoded_sample_pixels_are_the_ffmpeg_binarys() -> None:
    path = sample_video_path("carphone_pristine")
    np.testing.assert_array_equal(read_video(path), _ffmpeg_rgb(path, 176, 144))
    np.testing.assert_array_equal(read_video(path, threads=0), _ffmpeg_rgb(path, 176, 144))


@pytest.mark.parametrize(
    ("name", "codec", "frames"), [("a.mp4", "libx264", 1), ("b.mkv", "libx264", 13), ("c.avi", "mpeg4", 7)]
)
def test_probe_counts_every_frame(tmp_path: Path, name: str, codec: str, frames: int) -> None:
    # x264's default preset reorders frames (B-frames); AVI's codec tag "0x34504D46" once read as a size.
    write_video(tmp_path / name, _smooth_clip(frames), crf=20, codec=codec, fps=30)
    info = probe_video(tmp_path / name)
    assert (info.width, info.height, info.num_frames, info.fps) == (48, 32, frames, 30.0)
    assert read_video(tmp_path / name).shape == (frames, 32, 48, 3)


def test_probe_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FTVSRError, match=r"not found: .*nope\.mp4$"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(FTVSRError, match="not found"):
        probe_video(tmp_path)
    (tmp_path / "notes.mp4").write_text("a text file, not a video\n" * 20)
    with pytest.raises(FTVSRError, match=r"notes\.mp4: Invalid data"):
        probe_video(tmp_path / "notes.mp4")
    with wave.open(str(tmp_path / "tone.wav"), "wb") as audio:  # a media file without video
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(np.zeros(800, dtype=np.int16).tobytes())
    for call in (probe_video, read_video):
        with pytest.raises(FTVSRError, match=r"^no video stream in .*tone\.wav$"):
            call(tmp_path / "tone.wav")


def test_truncated_streamable_video(tmp_path: Path) -> None:
    # Index first ("faststart"): the file opens, and its last packet is cut short.
    source, fast = sample_video_path("carphone_pristine"), tmp_path / "fast.mp4"
    args = ["-v", "error", "-i", str(source), "-c", "copy", "-movflags", "+faststart", str(fast)]
    subprocess.run([ffmpeg_exe(), *args], check=True)
    data = fast.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.9)])
    for call in (probe_video, read_video):
        with pytest.raises(FTVSRError, match=r"cut\.mp4: packet 107 .* truncated"):
            call(tmp_path / "cut.mp4")


def test_concealed_frame_is_an_error(tmp_path: Path) -> None:
    # The decoder hides this damage (no error), only flags frame 55 corrupt: it must not pass.
    data = bytearray(sample_video_path("carphone_pristine").read_bytes())
    rng = random.Random(0)
    for i in range(280_000, 280_016):
        data[i] = rng.randrange(256)
    (tmp_path / "hidden.mp4").write_bytes(bytes(data))
    assert probe_video(tmp_path / "hidden.mp4").num_frames == 120  # the container is intact
    for _ in range(3):  # single-threaded decoding: the same verdict every time
        with pytest.raises(FTVSRError, match=r"hidden\.mp4: frame 55 is corrupt"):
            read_video(tmp_path / "hidden.mp4")
    assert read_video(tmp_path / "hidden.mp4", max_frames=55).shape == (55, 144, 176, 3)


def test_bad_arguments() -> None:
    path = sample_video_path("carphone_pristine")
    with pytest.raises(FTVSRError, match="max_frames"):
        read_video(path, max_frames=0)
    with pytest.raises(FTVSRError, match="threads"):
        read_video(path, threads=-1)
