from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ftvsr.data.degrade import (
    bd_degrade,
    bd_kernel_size,
    bi_degrade,
    degrade_folder,
    degrade_frame,
    gaussian_kernel_1d,
)
from ftvsr.data.imresize import imresize
from ftvsr.errors import FTVSRError
from ftvsr.io.frames import list_frames, read_clip, read_frame, write_clip, write_frame


@pytest.mark.parametrize("name", ["carphone0", "bbb60"])
def test_bd_matches_published_matlab(parity_dir: Path, name: str) -> None:
    hr = read_frame(parity_dir / "bd" / f"{name}.png")
    expected = read_frame(parity_dir / "bd" / f"{name}_bd.png")
    lr = bd_degrade(hr)
    assert lr.shape == expected.shape
    diff = np.abs(lr.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 1
    assert (diff == 0).mean() >= 0.999


def test_bd_kernel_is_matlab_fspecial() -> None:
    assert bd_kernel_size(1.6) == 12
    g = gaussian_kernel_1d(12, 1.6)
    # fspecial('gaussian', 12, 1.6): exp(-(x^2 + y^2) / (2 sigma^2)) on -5.5..5.5, normalised
    x = np.arange(-5.5, 6.0)
    xx, yy = np.meshgrid(x, x)
    fspecial = np.exp(-(xx**2 + yy**2) / (2 * 1.6**2))
    fspecial /= fspecial.sum()
    np.testing.assert_allclose(np.outer(g, g), fspecial, rtol=1e-12)
    np.testing.assert_allclose(g, g[::-1])


def test_bd_sampling_positions_and_shapes() -> None:
    # MATLAB rows 2:4:end-2 (1-based): for 50 rows, 2, 6, ..., 46 -> 12; for 61 columns 2, ..., 58 -> 15
    assert bd_degrade(np.zeros((50, 61, 3), np.uint8)).shape == (12, 15, 3)
    assert bd_degrade(np.zeros((144, 176, 3), np.uint8)).shape == (36, 44, 3)
    # A single bright row at 0-based 9 is seen by kept row 2 (0-based 9) more than any other
    img = np.zeros((48, 48, 3), np.uint8)
    img[9] = 255
    lr = bd_degrade(img)
    assert lr[:, 5, 0].argmax() == 2


def test_bd_keeps_a_constant_image() -> None:
    img = np.full((40, 36, 3), 123, np.uint8)
    np.testing.assert_array_equal(bd_degrade(img), 123)


def test_bd_rejects_a_frame_smaller_than_the_kernel() -> None:
    with pytest.raises(FTVSRError, match="smaller than the 12x12"):
        bd_degrade(np.zeros((11, 40, 3), np.uint8))
    with pytest.raises(FTVSRError, match="even scale"):
        bd_degrade(np.zeros((40, 40, 3), np.uint8), scale=3)
    with pytest.raises(FTVSRError, match="uint8"):
        bd_degrade(np.zeros((40, 40, 3), np.float32))


def test_bi_is_matlab_imresize_of_im2double() -> None:
    hr = np.random.default_rng(0).integers(0, 256, (35, 42, 3), dtype=np.uint8)
    lr = bi_degrade(hr)
    assert lr.shape == (9, 11, 3) and lr.dtype == np.uint8  # ceil(35 / 4), ceil(42 / 4)
    expected = np.floor(np.clip(imresize(hr / 255.0, 0.25) * 255, 0, 255) + 0.5)
    np.testing.assert_array_equal(lr, expected)
    assert np.abs(lr.astype(int) - imresize(hr, 0.25).astype(int)).max() <= 1


def test_unknown_method() -> None:
    with pytest.raises(FTVSRError, match="unknown degradation method 'bx'"):
        degrade_frame(np.zeros((16, 16, 3), np.uint8), "bx")


# -- folders ------------------------------------------------------------------------------


def _make_set(root: Path, clips: dict[str, int], h: int = 32, w: int = 40) -> dict[str, np.ndarray]:
    made = {}
    for i, (clip, t) in enumerate(clips.items()):
        frames = np.random.default_rng(i).integers(0, 256, (t, h, w, 3), dtype=np.uint8)
        write_clip(root / clip, frames)
        made[clip] = frames
    return made


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("method", ["bd", "bi"])
def test_degrade_folder_layout_and_values(tmp_path: Path, method: str) -> None:
    made = _make_set(tmp_path / "hr", {"000": 3, "001": 2})
    done = degrade_folder(tmp_path / "hr", tmp_path / "lr", method=method, progress=False)
    assert done == ["000", "001"]
    for clip, frames in made.items():
        names = [p.name for p in list_frames(tmp_path / "lr" / clip)]
        assert names == [p.name for p in list_frames(tmp_path / "hr" / clip)]
        lr = read_clip(tmp_path / "lr" / clip)
        assert lr.shape == (len(frames), 8, 10, 3)
        np.testing.assert_array_equal(lr[1], degrade_frame(frames[1], method))


def test_degrade_folder_parallel_equals_serial_and_resumes(tmp_path: Path) -> None:
    _make_set(tmp_path / "hr", {"a": 2, "b": 2, "c": 2})
    degrade_folder(tmp_path / "hr", tmp_path / "serial", workers=1, progress=False)
    degrade_folder(tmp_path / "hr", tmp_path / "pool", workers=2, progress=False)
    for clip in "abc":
        np.testing.assert_array_equal(read_clip(tmp_path / "serial" / clip), read_clip(tmp_path / "pool" / clip))
    # Complete clips are skipped: nothing rewritten
    before = _mtimes(tmp_path / "serial")
    assert degrade_folder(tmp_path / "hr", tmp_path / "serial", progress=False) == []
    assert _mtimes(tmp_path / "serial") == before


def test_degrade_folder_finishes_a_partial_output(tmp_path: Path) -> None:
    made = _make_set(tmp_path / "hr", {"a": 2, "b": 3, "c": 2})
    degrade_folder(tmp_path / "hr", tmp_path / "lr", progress=False)
    # Simulate an interrupted run: clip c never written, a leftover temporary folder from it,
    # and clip b left with a frame missing (e.g. copied by hand).
    (tmp_path / "lr" / "c").rename(tmp_path / "lr" / ".c.tmp")
    (tmp_path / "lr" / "b" / "00000002.png").unlink()
    kept = (tmp_path / "lr" / "a" / "00000000.png").stat().st_mtime_ns
    assert degrade_folder(tmp_path / "hr", tmp_path / "lr", progress=False) == ["b", "c"]
    assert (tmp_path / "lr" / "a" / "00000000.png").stat().st_mtime_ns == kept
    assert sorted(p.name for p in (tmp_path / "lr").iterdir()) == ["a", "b", "c"]
    for clip, frames in made.items():
        assert read_clip(tmp_path / "lr" / clip).shape == (len(frames), 8, 10, 3)


@pytest.mark.parametrize("workers", [1, 2])
def test_degrade_folder_errors_name_the_file_and_write_nothing_half(tmp_path: Path, workers: int) -> None:
    _make_set(tmp_path / "hr", {"good": 2, "mixed": 3})
    write_frame(tmp_path / "hr" / "mixed" / "00000001.png", np.zeros((36, 40, 3), np.uint8))
    with pytest.raises(FTVSRError, match=r"mixed.00000001\.png"):
        degrade_folder(tmp_path / "hr", tmp_path / "lr", workers=workers, progress=False)
    assert not (tmp_path / "lr" / "mixed").exists()
    assert not (tmp_path / "lr" / ".mixed.tmp").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_degrade_folder_corrupt_frame(tmp_path: Path, workers: int) -> None:
    _make_set(tmp_path / "hr", {"a": 2, "b": 2})
    path = tmp_path / "hr" / "b" / "00000001.png"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(FTVSRError, match=r"b.00000001\.png"):
        degrade_folder(tmp_path / "hr", tmp_path / "lr", workers=workers, progress=False)
    assert not (tmp_path / "lr" / "b").exists()


def test_degrade_folder_small_frames_name_the_file(tmp_path: Path) -> None:
    _make_set(tmp_path / "hr", {"tiny": 1}, h=8, w=40)
    with pytest.raises(FTVSRError, match=r"tiny.00000000\.png.*smaller than"):
        degrade_folder(tmp_path / "hr", tmp_path / "lr", progress=False)


def test_degrade_folder_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(FTVSRError, match="not found"):
        degrade_folder(tmp_path / "missing", tmp_path / "lr", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FTVSRError, match="no clip folders"):
        degrade_folder(tmp_path / "empty", tmp_path / "lr", progress=False)
    _make_set(tmp_path / "hr", {"a": 1})
    with pytest.raises(FTVSRError, match="unknown degradation method"):
        degrade_folder(tmp_path / "hr", tmp_path / "lr", method="bicubic", progress=False)
    (tmp_path / "hr" / "a" / "readme.txt").write_text("x")
    with pytest.raises(FTVSRError, match=re.escape("readme.txt")):
        degrade_folder(tmp_path / "hr", tmp_path / "lr", progress=False)
    with pytest.raises(FTVSRError, match="workers"):
        degrade_folder(tmp_path / "hr", tmp_path / "lr2", workers=0, progress=False)
    assert not (tmp_path / "lr").exists()
    assert not (tmp_path / "lr2").exists()
