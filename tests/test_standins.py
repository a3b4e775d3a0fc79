"""The stand-in archives (tests/standins.py): the publishers' exact layouts, our frames, the mirror."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import standins

from ftvsr.data import sources


def names(data: bytes) -> list[str]:
    return sorted(standins.zip_entries(data))


def test_every_part_of_the_table_has_a_stand_in():
    archives = standins.standin_archives()
    assert set(archives) == {s.mirror_path(p) for s in sources.SOURCES.values() for p in s.parts}


def test_reds_layout_and_lr_frames():
    archives = standins.reds_archives(train_clips=("000", "011"), val_clips=1, frames=2, size=(64, 48))
    assert names(archives["REDS/train_sharp.zip"]) == [
        f"train/train_sharp/{c}/{i:08d}.png" for c in ("000", "011") for i in range(2)
    ]
    assert names(archives["REDS/val_sharp.zip"]) == ["val/val_sharp/000/00000000.png", "val/val_sharp/000/00000001.png"]
    assert names(archives["REDS/train_sharp_bicubic.zip"])[0] == "train/train_sharp_bicubic/X4/000/00000000.png"
    assert names(archives["REDS/val_sharp_bicubic.zip"])[-1] == "val/val_sharp_bicubic/X4/000/00000001.png"
    gt = standins.zip_entries(archives["REDS/train_sharp.zip"])
    lr = standins.zip_entries(archives["REDS/train_sharp_bicubic.zip"])
    hr_frame = decode(gt["train/train_sharp/011/00000001.png"])
    lr_frame = decode(lr["train/train_sharp_bicubic/X4/011/00000001.png"])
    assert hr_frame.shape == (48, 64, 3) and lr_frame.shape == (12, 16, 3)
    np.testing.assert_array_equal(lr_frame, standins.downscale(hr_frame))
    # The defaults: REDS4 and other training clips, 160x128 GT (LR 40x32).
    default = standins.zip_entries(standins.reds_archives()["REDS/train_sharp.zip"])
    clips = sorted({name.split("/")[2] for name in default})
    assert set(standins.REDS4) < set(clips) and len(clips) == 7
    assert decode(default["train/train_sharp/000/00000000.png"]).shape == (128, 160, 3)


def test_vid4_and_vimeo_layouts():
    vid4 = names(standins.vid4_archive(frames=2)["Vid4/Vid4.zip"])
    assert [n for n in vid4 if n.startswith("Vid4/GT/")] == [
        f"Vid4/GT/{c}/{i:08d}.png" for c in ("calendar", "city", "foliage", "walk") for i in range(2)
    ]
    vimeo = standins.zip_entries(
        standins.vimeo_archive(train=("00001/0001",), test=("00002/0005",))["vimeo90k/vimeo_septuplet.zip"]
    )
    frames = sorted(n for n in vimeo if n.endswith(".png"))
    assert frames == [
        f"vimeo_septuplet/sequences/{k}/im{i}.png" for k in ("00001/0001", "00002/0005") for i in range(1, 8)
    ]
    assert vimeo["vimeo_septuplet/sep_trainlist.txt"] == b"00001/0001\n"
    assert vimeo["vimeo_septuplet/sep_testlist.txt"] == b"00002/0005\n"
    assert decode(vimeo["vimeo_septuplet/sequences/00001/0001/im7.png"]).shape == (64, 112, 3)


def test_frames_are_deterministic_smooth_and_moving():
    a = standins.frame((128, 96), 3, seed=7)
    assert a.dtype == np.uint8 and a.shape == (96, 128, 3)
    np.testing.assert_array_equal(a, standins.frame((128, 96), 3, seed=7))
    assert np.abs(a.astype(int) - standins.frame((128, 96), 4, seed=7)).mean() > 5  # it moves
    assert np.abs(a.astype(int) - standins.frame((128, 96), 3, seed=8)).mean() > 5  # clips differ
    steps = np.abs(np.diff(a.astype(int), axis=1))
    assert np.median(steps) <= 12 and a.std() > 30  # smooth, yet textured


def test_building_everything_is_fast():
    for cached in (standins._reds, standins._vid4, standins._vimeo):
        cached.cache_clear()
    start = time.perf_counter()
    standins.standin_archives()
    assert time.perf_counter() - start < 5  # about 0.8 s on one CPU core: a loose bound for busy machines


def test_mirror_serves_leaves_out_and_replaces_parts():
    with standins.Mirror(standins.spynet_file(b"w")) as mirror:
        key = "spynet/spynet_20210409-c6c1bd09.pth"
        assert mirror.env == {"FTVSR_MIRROR": mirror.base} and mirror.base.startswith("http://127.0.0.1:")
        assert urllib.request.urlopen(mirror.url(key)).read() == b"w"
        mirror[key] = b"other"
        assert urllib.request.urlopen(mirror.url(key)).read() == b"other"
        del mirror[key]
        assert key not in mirror
        try:
            urllib.request.urlopen(mirror.url(key))
        except urllib.error.HTTPError as err:
            assert err.code == 404
        else:
            raise AssertionError("a removed part is still served")
        assert len(mirror.gets_of(key)) == 3


def test_relayout_moves_entries():
    data = standins.zip_bytes({"a/b/c.png": b"1", "x.txt": b"2"})
    assert standins.zip_entries(standins.relayout(data, "a/b/", "z/")) == {"z/c.png": b"1", "x.txt": b"2"}


def test_command_line_build_and_serve(tmp_path):
    standins.main(["build", str(tmp_path / "mirror")])
    assert (tmp_path / "mirror/REDS/train_sharp.zip").is_file() and (tmp_path / "mirror/Vid4/Vid4.zip").is_file()

    port_file = tmp_path / "port"
    script = Path(standins.__file__)
    proc = subprocess.Popen(
        [sys.executable, str(script), "serve", "--port-file", str(port_file)],
        stdout=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().endswith("\n")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        port = int(port_file.read_text())
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/Vid4/Vid4.zip").read()
        assert body == (tmp_path / "mirror/Vid4/Vid4.zip").read_bytes()  # deterministic, process to process
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert re.match(rb"FTVSR_MIRROR=http://127\.0\.0\.1:\d+", out)


def decode(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
