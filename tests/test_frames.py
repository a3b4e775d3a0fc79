from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ftvsr.errors import FTVSRError
from ftvsr.io.frames import (
    frame_name,
    list_clips,
    list_frames,
    read_clip,
    read_frame,
    write_clip,
    write_frame,
)


def _frames(t: int = 3, h: int = 10, w: int = 14, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _png_bytes(img: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def test_write_and_read_clip_roundtrip(tmp_path: Path) -> None:
    frames = _frames()
    write_clip(tmp_path / "set" / "clipA", frames)
    paths = list_frames(tmp_path / "set" / "clipA")
    assert (
        [p.name for p in paths] == [frame_name(i) for i in range(3)] == ["00000000.png", "00000001.png", "00000002.png"]
    )
    clip = read_clip(tmp_path / "set" / "clipA")
    assert clip.dtype == np.uint8 and clip.shape == (3, 10, 14, 3)
    np.testing.assert_array_equal(clip, frames)


def test_list_clips_sorted_ignores_files_and_hidden(tmp_path: Path) -> None:
    for name in ["b", "a", "c10", "c2"]:
        write_clip(tmp_path / name, _frames(1))
    (tmp_path / "bitrate.csv").write_text("x")
    (tmp_path / ".a.tmp").mkdir()
    assert list_clips(tmp_path) == ["a", "b", "c10", "c2"]


def test_list_frames_sorted_by_name(tmp_path: Path) -> None:
    names = ["im2.png", "im10.png", "im1.png"]
    write_clip(tmp_path / "c", _frames(3), names)
    (tmp_path / "c" / ".im3.png.tmp").write_bytes(b"leftover")
    assert [p.name for p in list_frames(tmp_path / "c")] == sorted(names)


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_list_clips_missing_or_empty(tmp_path: Path, make: str) -> None:
    folder = tmp_path / "set"
    if make == "empty":
        folder.mkdir()
        (folder / "notes.txt").write_text("not a clip")
    with pytest.raises(FTVSRError, match=str(folder)):
        list_clips(folder)


def test_list_frames_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(FTVSRError, match="not found"):
        list_frames(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FTVSRError, match="no frames"):
        list_frames(tmp_path / "empty")


def test_non_image_file_among_frames_is_named(tmp_path: Path) -> None:
    write_clip(tmp_path / "c", _frames(2))
    (tmp_path / "c" / "notes.txt").write_text("hello")
    with pytest.raises(FTVSRError, match=re.escape("notes.txt")):
        list_frames(tmp_path / "c")
    (tmp_path / "c" / "notes.txt").unlink()
    (tmp_path / "c" / "sub").mkdir()
    with pytest.raises(FTVSRError, match="sub"):
        read_clip(tmp_path / "c")


def test_corrupt_png_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(b"this is not a png at all")
    with pytest.raises(FTVSRError, match=re.escape("bad.png")):
        read_frame(path)


def test_truncated_png_is_named(tmp_path: Path) -> None:
    data = _png_bytes(_frames(1, 40, 40)[0])
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FTVSRError, match=re.escape("cut.png")):
        read_frame(path)


def test_png_with_flipped_pixel_byte_is_rejected(tmp_path: Path) -> None:
    data = bytearray(_png_bytes(_frames(1, 40, 40)[0]))
    idat = data.find(b"IDAT")
    data[idat + 40] ^= 0xFF  # inside the compressed pixels: only the checksum can tell
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    with pytest.raises(FTVSRError, match=re.escape("flipped.png")):
        read_frame(path)


def test_missing_frame_is_named(tmp_path: Path) -> None:
    with pytest.raises(FTVSRError, match=re.escape("gone.png")):
        read_frame(tmp_path / "gone.png")


def test_grayscale_and_rgba_become_rgb(tmp_path: Path) -> None:
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = read_frame(tmp_path / "g.png")
    assert out.shape == (6, 8, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))

    rgba = _frames(1, 6, 8)[0]
    alpha = np.full((6, 8, 1), 17, dtype=np.uint8)
    Image.fromarray(np.concatenate([rgba, alpha], axis=2), mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_frame(tmp_path / "a.png"), rgba)


def test_mixed_sizes_name_the_first_differing_frame(tmp_path: Path) -> None:
    write_clip(tmp_path / "c", _frames(3, 10, 14))
    write_frame(tmp_path / "c" / "00000001.png", _frames(1, 12, 14)[0])
    with pytest.raises(FTVSRError, match=re.escape("00000001.png")):
        read_clip(tmp_path / "c")


def test_write_clip_is_all_or_nothing(tmp_path: Path) -> None:
    frames = _frames(3)
    # The third name has no known format: the failure comes after two frames were written.
    with pytest.raises(FTVSRError, match=re.escape("c.xyz")):
        write_clip(tmp_path / "clip", frames, ["a.png", "b.png", "c.xyz"])
    assert list(tmp_path.iterdir()) == []

    write_clip(tmp_path / "clip", frames)
    with pytest.raises(FTVSRError):
        write_clip(tmp_path / "clip", frames[:2], ["x.png", "y.xyz"])
    np.testing.assert_array_equal(read_clip(tmp_path / "clip"), frames)  # old clip untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]


def test_write_clip_replaces_an_existing_clip_whole(tmp_path: Path) -> None:
    write_clip(tmp_path / "clip", _frames(4, seed=1))
    write_clip(tmp_path / "clip", _frames(2, seed=2))
    np.testing.assert_array_equal(read_clip(tmp_path / "clip"), _frames(2, seed=2))


def test_write_clip_rejects_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(FTVSRError, match="uint8"):
        write_clip(tmp_path / "c", _frames(2).astype(np.float32))
    with pytest.raises(FTVSRError, match="names"):
        write_clip(tmp_path / "c", _frames(2), ["only-one.png"])
    with pytest.raises(FTVSRError, match="plain"):
        write_clip(tmp_path / "c", _frames(2), ["a.png", "sub/b.png"])
    assert not (tmp_path / "c").exists()


def test_write_frame_atomic_and_lossless(tmp_path: Path) -> None:
    img = _frames(1)[0]
    write_frame(tmp_path / "sub" / "f.png", img)
    np.testing.assert_array_equal(read_frame(tmp_path / "sub" / "f.png"), img)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.png"]
    with pytest.raises(FTVSRError):
        write_frame(tmp_path / "g.png", img[..., :2])
    assert not (tmp_path / "g.png").exists()
