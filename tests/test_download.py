"""Downloads against a real HTTP server on 127.0.0.1 (Range support, cut transfers, 404, 503)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import shutil
import tarfile
import time

import numpy as np
import pytest
import standins
from PIL import Image
from standins import FileServer, png, zip_bytes  # test_flows imports these from here too

from ftvsr.data import sources
from ftvsr.data.arrange import hr_clip_plan, link_lr_clip
from ftvsr.data.download import download, extract, fetch_dataset, sha256_file
from ftvsr.errors import FTVSRError
from ftvsr.io.frames import list_frames, read_frame


@pytest.fixture
def server():
    with FileServer() as srv:
        yield srv


def payload(n: int = 300_000, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------- download


def test_download_good_file(server, tmp_path):
    data = payload()
    server.files["/a.bin"] = data
    dst = tmp_path / "sub" / "a.bin"
    digest = download(f"{server.base}/a.bin", dst, sha256=sha(data), progress=False)
    assert digest == sha(data)
    assert dst.read_bytes() == data
    assert not dst.with_name("a.bin.part").exists()


def test_download_resumes_a_cut_transfer_with_range(server, tmp_path):
    data = payload(seed=1)
    server.files["/cut.bin"] = data
    server.cut_once.add("/cut.bin")
    dst = tmp_path / "cut.bin"
    digest = download(f"{server.base}/cut.bin", dst, sha256=sha(data), backoff=0, progress=False)
    assert digest == sha(data) and dst.read_bytes() == data
    ranges = server.gets("/cut.bin")
    assert ranges[0] is None and len(ranges) == 2
    assert ranges[1] == f"bytes={len(data) // 2}-"  # resumed where the cut left it


def test_download_resumes_a_part_file_from_an_earlier_run(server, tmp_path):
    data = payload(seed=2)
    server.files["/p.bin"] = data
    dst = tmp_path / "p.bin"
    dst.with_name("p.bin.part").write_bytes(data[:12345])
    assert download(f"{server.base}/p.bin", dst, sha256=sha(data), progress=False) == sha(data)
    assert server.gets("/p.bin") == ["bytes=12345-"]
    assert dst.read_bytes() == data


def test_download_restarts_when_server_ignores_range(server, tmp_path):
    data = payload(seed=3)
    server.files["/r.bin"] = data
    server.ignore_range.add("/r.bin")
    dst = tmp_path / "r.bin"
    dst.with_name("r.bin.part").write_bytes(b"stale bytes that are not the file")
    assert download(f"{server.base}/r.bin", dst, sha256=sha(data), progress=False) == sha(data)
    assert dst.read_bytes() == data


def test_download_complete_part_answered_416(server, tmp_path):
    data = payload(seed=4, n=5000)
    server.files["/c.bin"] = data
    dst = tmp_path / "c.bin"
    dst.with_name("c.bin.part").write_bytes(data)  # complete but never renamed
    assert download(f"{server.base}/c.bin", dst, sha256=sha(data), progress=False) == sha(data)
    assert dst.read_bytes() == data


def test_download_wrong_checksum_removes_the_file(server, tmp_path):
    server.files["/bad.bin"] = payload(seed=5)
    dst = tmp_path / "bad.bin"
    with pytest.raises(FTVSRError, match="sha256"):
        download(f"{server.base}/bad.bin", dst, sha256="0" * 64, progress=False)
    assert not dst.exists() and not dst.with_name("bad.bin.part").exists()


def test_download_wrong_size_removes_the_file(server, tmp_path):
    server.files["/s.bin"] = b"12345"
    dst = tmp_path / "s.bin"
    with pytest.raises(FTVSRError, match="expected 6"):
        download(f"{server.base}/s.bin", dst, size=6, progress=False)
    assert not dst.exists()


def test_download_404_fails_at_once_naming_the_url(server, tmp_path):
    url = f"{server.base}/missing.zip"
    with pytest.raises(FTVSRError, match="404") as info:
        download(url, tmp_path / "m.zip", retries=5, backoff=10, progress=False)
    assert url in str(info.value)
    assert len(server.gets("/missing.zip")) == 1  # no retries for a 404


def test_download_retries_5xx_then_succeeds(server, tmp_path):
    data = payload(seed=6, n=1000)
    server.files["/flaky.bin"] = data
    server.fail_times["/flaky.bin"] = 2
    dst = tmp_path / "flaky.bin"
    assert download(f"{server.base}/flaky.bin", dst, retries=3, backoff=0, progress=False) == sha(data)
    assert len(server.gets("/flaky.bin")) == 3


def test_download_gives_up_after_retries(server, tmp_path):
    server.files["/down.bin"] = b"x"
    server.fail_times["/down.bin"] = 100
    with pytest.raises(FTVSRError, match="3 attempts"):
        download(f"{server.base}/down.bin", tmp_path / "down.bin", retries=2, backoff=0, progress=False)
    assert len(server.gets("/down.bin")) == 3


def test_download_connection_refused_is_retried_then_reported(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FTVSRError, match="attempts"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "x", retries=1, backoff=0, progress=False)


def test_download_sha256_prefix_and_existing_file(server, tmp_path):
    data = payload(seed=7, n=2000)
    server.files["/w.pth"] = data
    dst = tmp_path / "w.pth"
    download(f"{server.base}/w.pth", dst, sha256=sha(data)[:8], progress=False)
    download(f"{server.base}/w.pth", dst, sha256=sha(data)[:8], progress=False)
    assert len(server.gets("/w.pth")) == 1  # the second call verified the file on disk
    dst.write_bytes(b"corrupted")
    download(f"{server.base}/w.pth", dst, sha256=sha(data), progress=False)
    assert dst.read_bytes() == data and len(server.gets("/w.pth")) == 2
    with pytest.raises(FTVSRError, match="hex"):
        download(f"{server.base}/w.pth", dst, sha256="xyz", progress=False)


# ---------------------------------------------------------------------------------- extract


def tar_bytes(entries: list[tuple[str, bytes | None, str | None, str]], mode: str = "w:gz") -> bytes:
    """entries: (name, data, linkname, type) with type in file / sym / hard."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data, link, kind in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = link
                tf.addfile(info)
    return buf.getvalue()


def test_extract_zip_and_tar(tmp_path):
    z = tmp_path / "a.zip"
    z.write_bytes(zip_bytes({"top/x.txt": b"x", "top/sub/y.txt": b"y"}))
    out = extract(z, tmp_path / "out_zip", progress=False)
    assert (out / "top/sub/y.txt").read_bytes() == b"y"
    t = tmp_path / "a.tar.gz"
    t.write_bytes(tar_bytes([("d/f.txt", b"f", None, "file"), ("d/link", None, "f.txt", "sym")]))
    out = extract(t, tmp_path / "out_tar", progress=False)
    assert (out / "d/link").read_bytes() == b"f"  # an in-tree symlink is fine


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/abs/evil.txt"])
def test_extract_refuses_zip_slip(tmp_path, name):
    z = tmp_path / "slip.zip"
    z.write_bytes(zip_bytes({"fine.txt": b"ok", name: b"evil"}))
    dst = tmp_path / "deep" / "out"
    with pytest.raises(FTVSRError, match=re.escape("evil.txt")):
        extract(z, dst, progress=False)
    assert not dst.exists() and not list(tmp_path.rglob("evil.txt"))
    assert not (tmp_path / "deep").exists()  # checked before anything is written


@pytest.mark.parametrize(
    "entry",
    [
        ("d/escape", None, "../../outside", "sym"),
        ("escape", None, "/etc/passwd", "sym"),
        ("d/hard", None, "../outside", "hard"),
    ],
)
def test_extract_refuses_links_out_of_the_tree(tmp_path, entry):
    t = tmp_path / "links.tar"
    t.write_bytes(tar_bytes([("d/f.txt", b"f", None, "file"), entry], mode="w"))
    with pytest.raises(FTVSRError, match=entry[0]):
        extract(t, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_extract_truncated_or_unknown_archive(tmp_path):
    t = tmp_path / "trunc.tar.gz"
    t.write_bytes(tar_bytes([("f.bin", payload(n=200_000), None, "file")])[:5000])
    with pytest.raises(FTVSRError, match=re.escape("trunc.tar.gz")):
        extract(t, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive")
    with pytest.raises(FTVSRError, match="neither"):
        extract(junk, tmp_path / "out", progress=False)


# ---------------------------------------------------------------------------------- fetch_dataset


def fake_reds_archives() -> dict[str, bytes]:
    """The four REDS zips with the publisher's inner layout, two clips and two frames each."""
    out = {}
    for split in ("train", "val"):
        for lr in (False, True):
            inner = f"{split}/{split}_sharp" + ("_bicubic/X4" if lr else "")
            entries = {
                f"{inner}/{clip}/{frame:08d}.png": png(10 * int(clip) + frame)
                for clip in ("000", "001")
                for frame in range(2)
            }
            name = f"{split}_sharp" + ("_bicubic" if lr else "") + ".zip"
            out[f"/REDS/{name}"] = zip_bytes(entries)
    return out


def test_fetch_dataset_reds_end_to_end(server, tmp_path, monkeypatch):
    server.files.update(fake_reds_archives())
    monkeypatch.setenv(sources.MIRROR_ENV, server.base)
    root = tmp_path / "data"
    dests = fetch_dataset("REDS", root, backoff=0, progress=False)
    assert dests == [root / "REDS/train/train_sharp", root / "REDS/train/train_sharp_bicubic/X4"]
    for dest in dests:
        assert sorted(p.name for p in dest.iterdir()) == ["000", "001", "240", "241"]
        assert sorted(p.name for p in (dest / "241").iterdir()) == ["00000000.png", "00000001.png"]
    # val clip 001 became 241 and kept its frames
    assert np.asarray(Image.open(root / "REDS/train/train_sharp/241/00000001.png"))[0, 0, 0] == 11
    lock = json.loads((root / "checksums.json").read_text())
    assert set(lock) == {
        f"REDS/{n}" for n in ("train_sharp.zip", "val_sharp.zip", "train_sharp_bicubic.zip", "val_sharp_bicubic.zip")
    }
    assert lock["REDS/val_sharp.zip"]["sha256"] == sha(server.files["/REDS/val_sharp.zip"])
    assert lock["REDS/val_sharp.zip"]["url"] == sources.REDS.part("val_sharp").url
    assert not (root / ".staging").exists()

    # A re-run verifies the kept archives and makes no request.
    n_requests = len(server.requests)
    fetch_dataset("REDS", root, backoff=0, progress=False)
    assert len(server.requests) == n_requests

    # The publisher's file changed: the lock file catches it when the set is rebuilt.
    (root / "downloads/REDS/val_sharp.zip").unlink()
    shutil.rmtree(root / "REDS/train/train_sharp")
    server.files["/REDS/val_sharp.zip"] = zip_bytes({"val/val_sharp/000/00000000.png": png(99)})
    with pytest.raises(FTVSRError, match="sha256"):
        fetch_dataset("REDS", root, backoff=0, progress=False)
    assert not (root / "downloads/REDS/val_sharp.zip").exists()
    assert not (root / "REDS/train/train_sharp").exists()


def test_fetch_dataset_failure_leaves_no_half_built_set(server, tmp_path):
    archives = fake_reds_archives()
    del archives["/REDS/val_sharp_bicubic.zip"]  # the mirror lacks one part: 404
    server.files.update(archives)
    root = tmp_path / "data"
    with pytest.raises(FTVSRError, match="404"):
        fetch_dataset("REDS", root, mirror=server.base, backoff=0, progress=False)
    assert (root / "REDS/train/train_sharp/240").is_dir()  # the complete set folder stays
    assert not (root / "REDS/train/train_sharp_bicubic/X4").exists()


def test_fetch_dataset_vimeo_layout_and_file_parts(server, tmp_path):
    entries = {
        f"vimeo_septuplet/sequences/00001/{sub}/im{i}.png": png(i) for sub in ("0001", "0266") for i in range(1, 8)
    }
    entries["vimeo_septuplet/sep_trainlist.txt"] = b"00001/0001\n00001/0266\n"
    entries["vimeo_septuplet/sep_testlist.txt"] = b""
    server.files["/vimeo90k/vimeo_septuplet.zip"] = zip_bytes(entries)
    root = tmp_path / "data"
    [dest] = fetch_dataset("vimeo90k", root, mirror=server.base, keep_archives=False, progress=False)
    assert sorted(p.name for p in dest.iterdir()) == ["00001_0001", "00001_0266"]
    assert len(list((dest / "00001_0266").iterdir())) == 7
    assert (root / "vimeo90k/sep_trainlist.txt").read_text().split() == ["00001/0001", "00001/0266"]
    assert sources.vimeo_clip_name("00001/0266") == "00001_0266"
    assert not (root / "downloads/vimeo90k/vimeo_septuplet.zip").exists()

    # SPyNet: the table's 8-hex prefix is checked (this fake file cannot match it).
    server.files["/spynet/spynet_20210409-c6c1bd09.pth"] = b"not the weights"
    with pytest.raises(FTVSRError, match="c6c1bd09"):
        fetch_dataset("spynet", root, mirror=server.base, progress=False)
    assert not (root / "weights").exists() or not any((root / "weights").iterdir())


def test_sources_table_is_consistent():
    for source in sources.SOURCES.values():
        assert len({p.name for p in source.parts}) == len(source.parts)
        for part in source.parts:
            assert part.url.startswith(("http://", "https://")) and part.filename
            assert part.kind in ("zip", "tar", "file")
            assert part.sha256 is None or 8 <= len(part.sha256) <= 64
    spynet = sources.SPYNET.parts[0]
    assert spynet.url.endswith(f"-{spynet.sha256}.pth")
    with pytest.raises(FTVSRError, match="unknown dataset"):
        sources.get_source("imagenet")
    assert sha256_file  # exported helper


def test_fetch_dataset_finds_clips_nested_differently(server, tmp_path):
    # The table says Vid4/GT; an archive holding GT/<clip> (one level less) is still understood.
    entries = {f"GT/{clip}/{i:08d}.png": png(i) for clip in ("calendar", "walk") for i in range(2)}
    entries["BDx4/calendar/00000000.png"] = png(0, (2, 2))
    server.files["/Vid4/Vid4.zip"] = zip_bytes(entries)
    [dest] = fetch_dataset("vid4", tmp_path, mirror=server.base, progress=False)
    assert dest == tmp_path / "Vid4/GT" and sorted(p.name for p in dest.iterdir()) == ["calendar", "walk"]
    server.files["/Vid4/Vid4.zip"] = zip_bytes({"other/calendar/00000000.png": png(0)})
    with pytest.raises(FTVSRError, match="Vid4/GT"):
        fetch_dataset("vid4", tmp_path / "again", mirror=server.base, progress=False)


def test_hr_clip_plan_vimeo_split_and_missing_downloads(tmp_path):
    from ftvsr.data.arrange import hr_clip_plan, link_clip

    gt = tmp_path / "vimeo90k" / "GT"
    for clip in ("00001_0001", "00001_0002", "00002_0001"):
        (gt / clip).mkdir(parents=True)
        (gt / clip / "im1.png").write_bytes(png(1))
    (tmp_path / "vimeo90k" / "sep_trainlist.txt").write_text("00001/0001\n00002/0001\n")
    plan = hr_clip_plan("vimeo90k", [], tmp_path)
    assert plan == {"train/00001_0001": gt / "00001_0001", "train/00002_0001": gt / "00002_0001"}
    assert link_clip(plan["train/00001_0001"], tmp_path / "hr" / "a") == 1
    with pytest.raises(FTVSRError, match=r"vid4 is not downloaded: .*Vid4/GT not found \(run `ftvsr fetch vid4"):
        hr_clip_plan("vimeo90k", ["vid4"], tmp_path)
    with pytest.raises(FTVSRError, match=r"test sets \['set5'\] cannot be prepared"):
        hr_clip_plan("vimeo90k", ["set5"], tmp_path)
    (tmp_path / "vimeo90k" / "sep_trainlist.txt").write_text("00001/0001\n00003/0001\n")
    with pytest.raises(FTVSRError, match=r"1 clips of sep_trainlist\.txt are missing .* e\.g\. 00003_0001"):
        hr_clip_plan("vimeo90k", [], tmp_path)
    with pytest.raises(FTVSRError, match="has no parts"):
        fetch_dataset("reds", tmp_path, parts=["train_blur"], progress=False)


# ---------------------------------------------------------------------------------- the stand-in mirror
# Archives in the publishers' exact layouts (tests/standins.py), served as FTVSR_MIRROR.

REDS_GT = ("train_sharp", "val_sharp")


@pytest.fixture
def mirror(monkeypatch):
    with standins.Mirror(standins.standin_archives()) as srv:
        monkeypatch.setenv(sources.MIRROR_ENV, srv.base)
        yield srv


def no_leftovers(root) -> None:
    """Nothing half-built: no temporary set folder, no staging folder."""
    assert not list(root.rglob("*.tmp")) and not (root / ".staging").exists()


def test_standins_through_the_mirror_make_the_expected_clip_folders(mirror, tmp_path):
    start = time.perf_counter()
    for dataset in ("reds", "vid4", "vimeo90k"):
        fetch_dataset(dataset, tmp_path, backoff=0, progress=False)
    elapsed = time.perf_counter() - start
    assert elapsed < 30, elapsed
    no_leftovers(tmp_path)

    plan = hr_clip_plan("reds", ["reds4", "vid4"], tmp_path)
    gt = tmp_path / "REDS/train/train_sharp"
    train = ["001", "002", "100", "240", "241"]  # REDS4 held out; val 000, 001 became 240, 241
    assert sorted(plan) == [
        *(f"test/reds4/{c}" for c in standins.REDS4),
        *(f"test/vid4/{c}" for c in standins.VID4_CLIPS),
        *(f"train/{c}" for c in train),
    ]
    assert plan["train/240"] == gt / "240" and plan["test/reds4/011"] == gt / "011"
    assert plan["test/vid4/city"] == tmp_path / "Vid4/GT/city"
    assert len(list_frames(plan["train/241"])) == standins.REDS_FRAMES
    # The dataset's own X4 LR: the same clips and frame names, each frame the GT downscaled x4.
    lr = tmp_path / "REDS/train/train_sharp_bicubic/X4"
    assert sorted(p.name for p in lr.iterdir()) == sorted(p.name for p in gt.iterdir())
    hr_frame = read_frame(gt / "241/00000004.png")
    assert hr_frame.shape == (128, 160, 3)
    np.testing.assert_array_equal(read_frame(lr / "241/00000004.png"), standins.downscale(hr_frame))
    assert read_frame(tmp_path / "Vid4/GT/city/00000000.png").shape == (128, 144, 3)

    plan = hr_clip_plan("vimeo90k", ["vid4"], tmp_path)
    vimeo = tmp_path / "vimeo90k/GT"
    everything = ["00001_0001", "00001_0003", "00001_0266", "00002_0010", "00002_0011"]
    assert sorted(p.name for p in vimeo.iterdir()) == everything
    trainlist = ["00001_0001", "00001_0266", "00002_0010"]  # sep_testlist has 00001_0003, 00002_0011
    assert sorted(k for k in plan if k.startswith("train/")) == [f"train/{c}" for c in trainlist]
    assert [p.name for p in list_frames(plan["train/00002_0010"])] == [f"im{i}.png" for i in range(1, 8)]
    assert len([k for k in plan if k.startswith("test/vid4/")]) == 4


def test_mirror_missing_a_part_names_the_url_and_the_part(mirror, tmp_path):
    del mirror["REDS/val_sharp.zip"]
    with pytest.raises(FTVSRError) as info:
        fetch_dataset("reds", tmp_path, parts=REDS_GT, backoff=0, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{mirror.url('REDS/val_sharp.zip')}: HTTP 404")
    assert "REDS part 'val_sharp'" in message and sources.MIRROR_ENV in message
    assert len(mirror.gets_of("REDS/val_sharp.zip")) == 1  # not retried
    assert not (tmp_path / "REDS").exists()  # no set folder, not even its parent
    assert not (tmp_path / "downloads/REDS/val_sharp.zip.part").exists()
    no_leftovers(tmp_path)

    mirror["REDS/val_sharp.zip"] = standins.reds_archives()["REDS/val_sharp.zip"]  # the mirror is fixed
    fetch_dataset("reds", tmp_path, parts=REDS_GT, backoff=0, progress=False)
    assert (tmp_path / "REDS/train/train_sharp/241").is_dir()


def test_publisher_missing_a_part_suggests_a_mirror(server, tmp_path, monkeypatch):
    # Without a mirror the table's URLs are used: point them at the local server.
    part = dataclasses.replace(sources.VID4.part("GT"), url=f"{server.base}/datasets/Vid4.zip")
    monkeypatch.setitem(sources.SOURCES, "vid4", dataclasses.replace(sources.VID4, parts=(part,)))
    monkeypatch.delenv(sources.MIRROR_ENV, raising=False)
    with pytest.raises(FTVSRError) as info:
        fetch_dataset("vid4", tmp_path, progress=False)
    message = str(info.value)
    assert message.startswith(f"{part.url}: HTTP 404") and "\n" not in message
    assert f"set {sources.MIRROR_ENV} to a mirror that serves it as Vid4/Vid4.zip" in message


def reds_one_level_up(archives):  # train/<clip>/... instead of train/train_sharp/<clip>/...
    return standins.relayout(archives["REDS/train_sharp.zip"], "train/train_sharp/", "train/")


def reds_one_level_down(archives):  # train/train_sharp/X4/<clip>/...: one more folder
    return standins.relayout(archives["REDS/train_sharp.zip"], "train/train_sharp/", "train/train_sharp/X4/")


def vid4_instead(archives):  # a zip of something else
    return archives["Vid4/Vid4.zip"]


def vimeo_flat(archives):  # sequences/<00001_0001>/im1.png: one level instead of two
    entries = standins.zip_entries(archives["vimeo90k/vimeo_septuplet.zip"])
    return standins.zip_bytes({re.sub(r"(sequences/\d+)/", r"\1_", k): v for k, v in entries.items()})


def vimeo_without_list(archives):  # sep_trainlist.txt is there: it must not be written alone
    entries = standins.zip_entries(archives["vimeo90k/vimeo_septuplet.zip"])
    del entries["vimeo_septuplet/sep_testlist.txt"]
    return standins.zip_bytes(entries)


@pytest.mark.parametrize(
    ("dataset", "key", "broken", "expected"),
    [
        ("reds", "REDS/train_sharp.zip", reds_one_level_up, "expected the clip folders under 'train/train_sharp/'"),
        ("reds", "REDS/train_sharp.zip", reds_one_level_down, "clip folder 'train/train_sharp/X4/' holds no image"),
        ("reds", "REDS/train_sharp.zip", vid4_instead, "under 'train/train_sharp/' in the archive, found ['Vid4/'"),
        (
            "vimeo90k",
            "vimeo90k/vimeo_septuplet.zip",
            vimeo_flat,
            "no clip folders found under 'vimeo_septuplet/sequences' "
            "(expected vimeo_septuplet/sequences/<folder>/<sub>/<frame>.png)",
        ),
        (
            "vimeo90k",
            "vimeo90k/vimeo_septuplet.zip",
            vimeo_without_list,
            "'vimeo_septuplet/sep_testlist.txt' is missing from the archive",
        ),
    ],
)
def test_archive_in_a_wrong_layout_is_named_and_removed(mirror, tmp_path, dataset, key, broken, expected):
    good = mirror[key]
    mirror[key] = broken(standins.standin_archives())
    archive = tmp_path / "downloads" / key
    with pytest.raises(FTVSRError) as info:
        fetch_dataset(dataset, tmp_path, backoff=0, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{archive}: ") and expected in message
    assert message.endswith(f"; removed the downloaded archive: check what {mirror.url(key)} serves")
    assert not archive.exists()  # not kept, and not recorded: a fixed mirror is accepted
    lock = tmp_path / "checksums.json"
    assert not lock.exists() or key not in json.loads(lock.read_text())
    set_folder = tmp_path / ("REDS/train/train_sharp" if dataset == "reds" else "vimeo90k/GT")
    assert not set_folder.exists() and not set_folder.parent.exists()  # nothing half-built, no split list
    no_leftovers(tmp_path)

    mirror[key] = good
    fetch_dataset(dataset, tmp_path, backoff=0, progress=False)
    assert len(list(set_folder.iterdir())) > 1 and key in json.loads(lock.read_text())


def test_archive_the_lock_file_vouches_for_is_kept(mirror, tmp_path, monkeypatch):
    fetch_dataset("vid4", tmp_path, progress=False)
    shutil.rmtree(tmp_path / "Vid4/GT")
    # The archive is the one recorded, but the table now expects another folder (a code change).
    part = dataclasses.replace(sources.VID4.part("GT"), clip_root="Vid4/HR")
    monkeypatch.setitem(sources.SOURCES, "vid4", dataclasses.replace(sources.VID4, parts=(part,)))
    with pytest.raises(FTVSRError, match=r"under 'Vid4/HR/' .*; kept the archive, whose sha256 is the one recorded"):
        fetch_dataset("vid4", tmp_path, progress=False)
    assert (tmp_path / "downloads/Vid4/Vid4.zip").is_file() and not (tmp_path / "Vid4").exists()
    assert len(mirror.gets_of("Vid4/Vid4.zip")) == 1


def test_wrong_spynet_bytes_are_refused_and_not_kept(mirror, tmp_path, monkeypatch):
    key = "spynet/spynet_20210409-c6c1bd09.pth"
    assert mirror[key] == standins.SPYNET_BYTES
    with pytest.raises(FTVSRError) as info:
        fetch_dataset("spynet", tmp_path, progress=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{mirror.url(key)}: sha256 ")
    assert "does not match the expected c6c1bd09; removed the downloaded file" in message
    assert not (tmp_path / "weights").exists() or not any((tmp_path / "weights").iterdir())
    assert not (tmp_path / "checksums.json").exists()

    # The same bytes with a table that expects them: accepted (how other tests use the stand-in).
    monkeypatch.setitem(sources.SOURCES, "spynet", standins.spynet_source())
    [path] = fetch_dataset("spynet", tmp_path, progress=False)
    assert path == tmp_path / sources.SPYNET.part("weights").dest and path.read_bytes() == standins.SPYNET_BYTES


def test_a_datasets_own_lr_clip_is_linked_only_when_it_matches_its_hr_clip(tmp_path):
    def clip(folder, names, size):
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_bytes(png(3, size))
        return folder

    hr = clip(tmp_path / "hr", ["00000000.png", "00000001.png"], (32, 24))
    good = clip(tmp_path / "x4", ["00000000.png", "00000001.png"], (8, 6))
    assert link_lr_clip(good, hr, tmp_path / "out", 4) == 2
    assert [p.name for p in list_frames(tmp_path / "out")] == ["00000000.png", "00000001.png"]
    short = clip(tmp_path / "short", ["00000000.png"], (8, 6))
    with pytest.raises(FTVSRError, match="do not match the 2 frames"):
        link_lr_clip(short, hr, tmp_path / "out_short", 4)
    wrong_size = clip(tmp_path / "x2", ["00000000.png", "00000001.png"], (16, 12))
    with pytest.raises(FTVSRError, match=r"16x12 is not .* \(32x24\) / 4"):
        link_lr_clip(wrong_size, hr, tmp_path / "out_x2", 4)
    assert not (tmp_path / "out_short").exists() and not (tmp_path / "out_x2").exists()
