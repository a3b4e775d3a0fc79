from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ftvsr.data.compress import (
    PUBLISHED_COMMAND,
    TABLE_NAME,
    ClipStats,
    compress_clip,
    compress_folder,
)
from ftvsr.errors import FTVSRError
from ftvsr.io.frames import list_frames, read_clip, write_clip
from ftvsr.io.video import probe_video


def _clip(t: int, h: int, w: int, phase: int = 0) -> np.ndarray:
    """Smooth moving content with some texture: CRF changes both size and quality."""
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(phase)
    texture = rng.normal(0, 12, (h + t, w + t))
    frames = []
    for i in range(t):
        luma = 128 + 60 * np.sin(2 * np.pi * (xx + 2 * i + phase) / 13) * np.cos(2 * np.pi * (yy - i) / 11)
        luma = luma + texture[i : i + h, i : i + w]
        frames.append(np.stack([luma + 15, luma, luma - 15], axis=-1))
    return np.clip(np.round(frames), 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.fixture()
def lr_set(tmp_path: Path) -> Path:
    src = tmp_path / "lr"
    write_clip(src / "even", _clip(5, 26, 30), [f"im{i}.png" for i in range(1, 6)])
    write_clip(src / "odd", _clip(5, 25, 29, phase=3))
    return src


def test_published_command_is_recorded() -> None:
    assert "-vcodec libx264 -crf" in PUBLISHED_COMMAND


def test_compress_folder_layout_and_table(lr_set: Path, tmp_path: Path) -> None:
    dst = tmp_path / "crf25"
    table = compress_folder(lr_set, dst, crf=25, progress=False)
    assert sorted(p.name for p in dst.iterdir()) == [
        TABLE_NAME,
        "even",
        "even.json",
        "even.mp4",
        "odd",
        "odd.json",
        "odd.mp4",
    ]
    for clip in ("even", "odd"):
        src_names = [p.name for p in list_frames(lr_set / clip)]
        assert [p.name for p in list_frames(dst / clip)] == src_names
        source, decoded = read_clip(lr_set / clip), read_clip(dst / clip)
        assert decoded.shape == source.shape
        assert _psnr(decoded, source) > 25
        info = probe_video(dst / f"{clip}.mp4")
        assert (info.num_frames, info.fps) == (5, 25.0)
        assert (info.width, info.height) == (30, 26)  # the odd 29x25 clip is encoded padded
    assert list(table.columns[:7]) == ["clip", "frames", "width", "height", "crf", "bytes", "bitrate_kbps"]
    assert list(table["clip"]) == ["even", "odd"]
    assert list(table["width"]) == [30, 29] and list(table["height"]) == [26, 25]
    assert list(table["frames"]) == [5, 5] and list(table["crf"]) == [25, 25]
    for row in table.itertuples():
        size = (dst / f"{row.clip}.mp4").stat().st_size
        assert row.bytes == size
        assert row.bitrate_kbps == pytest.approx(size * 8 / 1000 / (5 / 25))
        assert row.psnr_db == pytest.approx(_psnr(read_clip(dst / row.clip), read_clip(lr_set / row.clip)))
    on_disk = pd.read_csv(dst / TABLE_NAME)
    pd.testing.assert_frame_equal(on_disk, table, check_dtype=False)
    assert ClipStats(**json.loads((dst / "odd.json").read_text())).width == 29


def test_higher_crf_means_fewer_bytes_and_lower_psnr(lr_set: Path, tmp_path: Path) -> None:
    tables = {crf: compress_folder(lr_set, tmp_path / f"crf{crf}", crf=crf, progress=False) for crf in (15, 35)}
    for clip in ("even", "odd"):
        low = tables[15].set_index("clip").loc[clip]
        high = tables[35].set_index("clip").loc[clip]
        assert high["bytes"] < low["bytes"]
        src = read_clip(lr_set / clip)
        assert _psnr(read_clip(tmp_path / "crf35" / clip), src) < _psnr(read_clip(tmp_path / "crf15" / clip), src)


def test_compress_clip_keeps_frame_order_and_odd_sizes() -> None:
    frames = _clip(5, 25, 29)
    decoded, stats = compress_clip(frames, crf=0, clip="x")
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    for i in range(5):
        errors = [np.abs(decoded[i].astype(int) - f).mean() for f in frames]
        assert int(np.argmin(errors)) == i
    assert (stats.clip, stats.frames, stats.width, stats.height, stats.crf) == ("x", 5, 29, 25, 0)
    assert stats.psnr_db > 35


def test_parallel_equals_serial(lr_set: Path, tmp_path: Path) -> None:
    serial = compress_folder(lr_set, tmp_path / "serial", crf=30, progress=False)
    pooled = compress_folder(lr_set, tmp_path / "pool", crf=30, workers=2, progress=False)
    pd.testing.assert_frame_equal(serial, pooled)  # one encoder thread: identical bitstreams
    for clip in ("even", "odd"):
        np.testing.assert_array_equal(read_clip(tmp_path / "serial" / clip), read_clip(tmp_path / "pool" / clip))


def test_resumes_and_redoes_only_what_is_missing(lr_set: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    first = compress_folder(lr_set, dst, crf=25, progress=False)
    odd_mtime = (dst / "odd.mp4").stat().st_mtime_ns
    # interrupted before the sidecar of "even" was written, with a leftover temporary folder
    (dst / "even.json").unlink()
    (dst / ".even.tmp").mkdir()
    (dst / TABLE_NAME).unlink()
    again = compress_folder(lr_set, dst, crf=25, progress=False)
    pd.testing.assert_frame_equal(first, again)
    assert (dst / "odd.mp4").stat().st_mtime_ns == odd_mtime  # complete clip skipped
    assert not (dst / ".even.tmp").exists()
    # other settings: every clip is redone, not mixed with the old ones
    redone = compress_folder(lr_set, dst, crf=35, progress=False)
    assert list(redone["crf"]) == [35, 35]
    assert (dst / "odd.mp4").stat().st_mtime_ns != odd_mtime


def test_keep_video_false(lr_set: Path, tmp_path: Path) -> None:
    table = compress_folder(lr_set, tmp_path / "out", crf=25, keep_video=False, progress=False)
    assert not list((tmp_path / "out").glob("*.mp4"))
    assert (table["bytes"] > 0).all()


@pytest.mark.parametrize("crf", [-1, 52, 25.5, "25"])
def test_crf_outside_range(lr_set: Path, tmp_path: Path, crf: object) -> None:
    with pytest.raises(FTVSRError, match="CRF"):
        compress_folder(lr_set, tmp_path / "out", crf=crf, progress=False)
    assert not (tmp_path / "out").exists()


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(FTVSRError, match="not found"):
        compress_folder(tmp_path / "missing", tmp_path / "out", crf=25, progress=False)
    write_clip(tmp_path / "lr" / "a", _clip(2, 20, 20))
    write_clip(tmp_path / "lr" / "b", _clip(2, 20, 20))
    (tmp_path / "lr" / "b" / "00000001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(FTVSRError, match=r"b.00000001\.png"):
        compress_folder(tmp_path / "lr", tmp_path / "out", crf=25, workers=2, progress=False)
    assert not (tmp_path / "out" / "b").exists() and not (tmp_path / "out" / "b.json").exists()
    write_clip(tmp_path / "lr" / "b", [_clip(1, 20, 20)[0], _clip(1, 22, 20)[0]])
    with pytest.raises(FTVSRError, match=r"b.00000001\.png"):
        compress_folder(tmp_path / "lr", tmp_path / "out", crf=25, progress=False)
    (tmp_path / "lr" / "b" / "Thumbs.db").write_bytes(b"x")
    with pytest.raises(FTVSRError, match=re.escape("Thumbs.db")):
        compress_folder(tmp_path / "lr", tmp_path / "out2", crf=25, progress=False)
    assert not (tmp_path / "out2").exists()
