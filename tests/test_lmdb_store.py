"""LMDB packing in BasicSR's layout, lazy per-process reading, and clear errors."""

from __future__ import annotations

import io
import pickle
import re

import lmdb
import numpy as np
import pytest
from PIL import Image

from ftvsr.errors import FTVSRError
from ftvsr.io import lmdb_store
from ftvsr.io.frames import write_clip, write_frame
from ftvsr.io.lmdb_store import LmdbFrames, is_lmdb, pack_lmdb, parse_meta_info, verify_lmdb


def make_set(root, clips=(("a", 3, (5, 7)), ("b", 2, (6, 4))), seed=0):
    """clip name, frame count, (h, w) -> a set folder of random PNG frames; returns the frames."""
    rng = np.random.default_rng(seed)
    frames = {}
    for clip, n, (h, w) in clips:
        data = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        write_clip(root / clip, data)
        frames[clip] = data
    return frames


def test_pack_layout_and_read_back(tmp_path):
    frames = make_set(tmp_path / "set")
    dst = pack_lmdb(tmp_path / "set", tmp_path / "set.lmdb", progress=False)
    assert dst == tmp_path / "set.lmdb"
    assert sorted(p.name for p in dst.iterdir()) == ["content.sha256", "data.mdb", "meta_info.txt"]  # no lock file
    # BasicSR's meta_info.txt: name with extension, (h,w,c), compression level
    lines = (dst / "meta_info.txt").read_text().splitlines()
    assert lines[0] == "a/00000000.png (5,7,3) 1"
    assert lines[-1] == "b/00000001.png (6,4,3) 1"
    store = LmdbFrames(dst)
    assert store.keys() == ["a/00000000", "a/00000001", "a/00000002", "b/00000000", "b/00000001"]
    assert store.clips() == {"a": ["00000000", "00000001", "00000002"], "b": ["00000000", "00000001"]}
    assert store.shape("b/00000001") == (6, 4, 3)
    for clip, data in frames.items():
        for i, frame in enumerate(data):
            got = store.read(f"{clip}/{i:08d}")
            assert got.dtype == np.uint8 and np.array_equal(got, frame)
    # Values are plain PNG under ASCII keys: what BasicSR's reader (cv2.imdecode) expects.
    store.close()  # py-lmdb opens a path once per process
    with lmdb.open(str(dst), readonly=True, lock=False) as env, env.begin() as txn:
        raw = txn.get(b"a/00000001")
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(raw))), frames["a"][1])


def test_pack_verify_and_verify_detects_a_changed_source(tmp_path):
    make_set(tmp_path / "set")
    pack_lmdb(tmp_path / "set", tmp_path / "x.lmdb", compress_level=6, verify=True, progress=False)
    assert parse_meta_info(tmp_path / "x.lmdb/meta_info.txt")[0].compress_level == 6
    write_frame(tmp_path / "set/b/00000001.png", np.zeros((6, 4, 3), np.uint8))
    with pytest.raises(FTVSRError, match="b/00000001"):
        verify_lmdb(tmp_path / "x.lmdb", tmp_path / "set", progress=False)


def test_pack_replaces_atomically_and_leaves_nothing_on_failure(tmp_path):
    make_set(tmp_path / "set")
    pack_lmdb(tmp_path / "set", tmp_path / "x.lmdb", progress=False)
    before = (tmp_path / "x.lmdb/meta_info.txt").read_text()
    (tmp_path / "set/b/00000001.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(FTVSRError, match=re.escape("00000001.png")):
        pack_lmdb(tmp_path / "set", tmp_path / "x.lmdb", progress=False)
    assert (tmp_path / "x.lmdb/meta_info.txt").read_text() == before  # old store untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set", "x.lmdb"]  # no temporary left
    with pytest.raises(FTVSRError, match="compress_level"):
        pack_lmdb(tmp_path / "set", tmp_path / "y.lmdb", compress_level=10, progress=False)
    with pytest.raises(FTVSRError, match="not found"):
        pack_lmdb(tmp_path / "nowhere", tmp_path / "y.lmdb", progress=False)


def test_pack_grows_an_underestimated_map(tmp_path, monkeypatch):
    frames = make_set(tmp_path / "set", clips=(("c", 4, (64, 64)),))
    monkeypatch.setattr(lmdb_store, "MAP_MARGIN", 0.01)
    monkeypatch.setattr(lmdb_store, "MAP_SLACK", 4096 * 8)
    monkeypatch.setattr(lmdb_store, "COMMIT_FRAMES", 2)
    pack_lmdb(tmp_path / "set", tmp_path / "g.lmdb", progress=False)
    store = LmdbFrames(tmp_path / "g.lmdb")
    assert all(np.array_equal(store.read(f"c/{i:08d}"), frames["c"][i]) for i in range(4))


def _files(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_packing_twice_gives_the_same_bytes(tmp_path, monkeypatch):
    """DVC hashes the folder: the same frames must give byte-identical files. Frames large enough
    for LMDB's overflow pages, several transactions (free pages), verify on (a reader)."""
    make_set(tmp_path / "set", clips=(("a", 6, (48, 64)), ("b", 5, (40, 36)), ("c", 3, (8, 8))))
    monkeypatch.setattr(lmdb_store, "COMMIT_FRAMES", 4)
    first = pack_lmdb(tmp_path / "set", tmp_path / "one" / "x.lmdb", verify=True, progress=False)
    second = pack_lmdb(tmp_path / "set", tmp_path / "two" / "x.lmdb", verify=True, progress=False)
    files, again = _files(first), _files(second)
    assert sorted(files) == sorted(again) == ["content.sha256", "data.mdb", "meta_info.txt"]
    assert [name for name in files if files[name] != again[name]] == []  # names the files that differ
    # Reading neither writes into the store nor leaves a lock file in it.
    store = LmdbFrames(second)
    assert all(store.read(key) is not None for key in store.keys())
    store.close()
    assert _files(second) == files
    assert is_lmdb(second)


def test_content_digest_follows_the_pixels_only(tmp_path):
    """content.sha256 identifies the frames (training resumes only on the same data), whatever the
    PNG level; one changed pixel changes it."""
    make_set(tmp_path / "set")
    digest = lmdb_store.CONTENT_DIGEST_FILE

    def packed(name: str, level: int = 1) -> str:
        return (pack_lmdb(tmp_path / "set", tmp_path / name, level, progress=False) / digest).read_text()

    first = packed("one.lmdb")
    assert first == packed("level6.lmdb", level=6)
    frame = tmp_path / "set" / "b" / "00000001.png"
    pixels = np.array(Image.open(frame))
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(frame)
    assert packed("changed.lmdb") != first


def test_lazy_open_and_pickle(tmp_path):
    frames = make_set(tmp_path / "set")
    pack_lmdb(tmp_path / "set", tmp_path / "x.lmdb", progress=False)
    store = LmdbFrames(tmp_path / "x.lmdb")
    assert not store.is_open  # nothing opened until the first read
    store.read("a/00000000")
    assert store.is_open
    clone = pickle.loads(pickle.dumps(store))  # what a spawned DataLoader worker receives
    assert np.array_equal(clone.read("b/00000000"), frames["b"][0])  # shares the handle
    other = LmdbFrames(tmp_path / "x.lmdb")  # a second reader of the same path in one process
    assert np.array_equal(other.read("a/00000002"), frames["a"][2])
    other.close()
    assert not store.is_open
    assert np.array_equal(store.read("a/00000001"), frames["a"][1])  # reopened on demand
    assert "a/00000002" in store and "a/00000009" not in store and len(store) == 5
    store.close()


def test_forked_child_opens_its_own_handle(tmp_path):
    import multiprocessing

    frames = make_set(tmp_path / "set")
    pack_lmdb(tmp_path / "set", tmp_path / "x.lmdb", progress=False)
    store = LmdbFrames(tmp_path / "x.lmdb")
    store.read("a/00000000")  # the parent holds a handle before forking
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply(store.read, ("b/00000001",))
    assert np.array_equal(child, frames["b"][1])
    assert np.array_equal(store.read("a/00000002"), frames["a"][2])  # parent unaffected
    store.close()


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(FTVSRError, match="not found"):
        LmdbFrames(tmp_path / "missing.lmdb")
    (tmp_path / "empty.lmdb").mkdir()
    with pytest.raises(FTVSRError, match=re.escape("data.mdb")):
        LmdbFrames(tmp_path / "empty.lmdb")

    make_set(tmp_path / "set")
    pack_lmdb(tmp_path / "set", tmp_path / "x.lmdb", progress=False)
    store = LmdbFrames(tmp_path / "x.lmdb")
    with pytest.raises(FTVSRError, match="'a/00000009' not in LMDB"):
        store.read("a/00000009")
    store.close()

    # a value that is not an image
    with lmdb.open(str(tmp_path / "x.lmdb"), map_size=1 << 24) as env, env.begin(write=True) as txn:
        txn.put(b"a/00000001", b"garbage")
        txn.delete(b"a/00000002")
    store = LmdbFrames(tmp_path / "x.lmdb")
    with pytest.raises(FTVSRError, match="corrupt frame 'a/00000001'"):
        store.read("a/00000001")
    with pytest.raises(FTVSRError, match="missing from LMDB"):
        store.read("a/00000002")
    store.close()

    # a data.mdb that is not an LMDB at all
    (tmp_path / "x.lmdb/data.mdb").write_bytes(b"\0" * 100)
    (tmp_path / "x.lmdb/lock.mdb").unlink(missing_ok=True)
    with pytest.raises(FTVSRError, match="cannot open LMDB"):
        LmdbFrames(tmp_path / "x.lmdb").read("a/00000000")


def test_meta_info_parsing(tmp_path):
    meta = tmp_path / "meta_info.txt"
    meta.write_text("000/00000000.png (720,1280,3) 1\n00001/0266/im1 (256,448,3) 3\n\n")
    entries = parse_meta_info(meta)
    assert [(e.clip, e.frame, e.shape, e.compress_level) for e in entries] == [
        ("000", "00000000", (720, 1280, 3), 1),
        ("00001/0266", "im1", (256, 448, 3), 3),
    ]
    meta.write_text("000/00000000.png (720,1280,3) 1\nbroken line\n")
    with pytest.raises(FTVSRError, match=re.escape("meta_info.txt:2")):
        parse_meta_info(meta)


def test_repacking_an_open_lmdb_serves_the_new_frames(tmp_path):
    make_set(tmp_path / "set", seed=0)
    pack_lmdb(tmp_path / "set", tmp_path / "x.lmdb", progress=False)
    LmdbFrames(tmp_path / "x.lmdb").read("a/00000000")  # this process now holds a handle
    new = make_set(tmp_path / "set", seed=1)
    pack_lmdb(tmp_path / "set", tmp_path / "x.lmdb", progress=False)
    store = LmdbFrames(tmp_path / "x.lmdb")
    assert np.array_equal(store.read("a/00000000"), new["a"][0])
    store.close()
