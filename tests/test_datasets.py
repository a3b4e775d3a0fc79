"""Training / test Datasets on tiny synthetic sets, over frame folders and LMDB alike.

Synthetic frames make every property checkable from the pixels: channel 0 is noise, with
GT made from LQ by nearest upsampling (so any crop, flip or transpose that differs between
LQ and GT breaks `gt[y, x] == lq[y // 4, x // 4]`); channel 1 is the frame index (the
temporal order); channel 2 of LQ encodes the compression level the frame came from.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ftvsr.data import datasets as ds
from ftvsr.errors import FTVSRError
from ftvsr.io.frames import write_clip
from ftvsr.io.lmdb_store import pack_lmdb

SCALE = 4
LEVELS = ("raw", 15, 25, 35)
LEVEL_CODE = {"raw": 200, "15": 15, "25": 25, "35": 35}


def build_sets(root, clips=("000", "001"), n_frames=6, lq_hw=(6, 7), seed=0):
    """GT set + one LQ set per level under `root`; returns {"gt": path, "lq": {level: path}}."""
    rng = np.random.default_rng(seed)
    h, w = lq_hw
    lq_dirs = {level: root / f"lq_{level}" for level in LEVELS}
    for c, clip in enumerate(clips):
        noise = rng.integers(0, 256, (n_frames, h, w), dtype=np.uint8)
        index = np.broadcast_to((np.arange(n_frames) * 10 + c).astype(np.uint8)[:, None, None], (n_frames, h, w))
        gt = np.stack([noise, index, np.zeros_like(noise)], axis=-1).repeat(SCALE, 1).repeat(SCALE, 2)
        write_clip(root / "gt" / clip, gt)
        for level, folder in lq_dirs.items():
            code = np.full_like(noise, LEVEL_CODE[ds.level_label(level)])
            write_clip(folder / clip, np.stack([noise, index, code], axis=-1))
    return {"gt": root / "gt", "lq": lq_dirs}


@pytest.fixture(params=["folder", "lmdb"])
def sets(request, tmp_path):
    paths = build_sets(tmp_path)
    if request.param == "lmdb":
        paths = {
            "gt": pack_lmdb(paths["gt"], tmp_path / "gt.lmdb", progress=False),
            "lq": {
                level: pack_lmdb(p, tmp_path / f"lq_{level}.lmdb", progress=False) for level, p in paths["lq"].items()
            },
        }
    return paths


def as_uint8(x: torch.Tensor) -> np.ndarray:
    """float (t, 3, h, w) in [0, 1] -> uint8 (t, h, w, 3)."""
    return (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def check_sample(sample, num_frames, lq_patch):
    lq, gt = sample["lq"], sample["gt"]
    assert lq.dtype == gt.dtype == torch.float32
    assert lq.shape == (num_frames, 3, lq_patch, lq_patch)
    assert gt.shape == (num_frames, 3, lq_patch * SCALE, lq_patch * SCALE)
    assert 0 <= lq.min() and lq.max() <= 1
    lq8, gt8 = as_uint8(lq), as_uint8(gt)
    up = lq8.repeat(SCALE, 1).repeat(SCALE, 2)
    assert np.array_equal(up[..., :2], gt8[..., :2]), "LQ and GT crops are not aligned"
    order = lq8[:, 0, 0, 1].astype(int)
    steps = np.diff(order)
    assert np.all(steps == 10) or np.all(steps == -10), f"not a consecutive window: {order}"
    codes = lq8[:, 0, 0, 2]
    labels = sample["crf"].split(",")
    if len(labels) == 1:
        labels = labels * num_frames
    assert [LEVEL_CODE[label] for label in labels] == codes.tolist()


def test_train_samples_are_aligned_windows(sets):
    data = ds.VideoSRTrainDataset(sets["gt"], sets["lq"], num_frames=4, gt_patch_size=16, samples_per_epoch=40, seed=1)
    assert len(data) == 40 and data.clips == ["000", "001"]
    seen = set()
    for i in range(len(data)):
        sample = data[i]
        check_sample(sample, 4, 4)
        assert sample["clip"] == data.clips[i % 2]
        seen.add(sample["crf"])
    assert seen == {"raw", "15", "25", "35"}


def test_augmentations_apply_identically_to_lq_and_gt(tmp_path):
    # Square frames and a patch covering them: the result is predictable exactly.
    paths = build_sets(tmp_path / "sq", lq_hw=(5, 5), n_frames=3)
    src_lq = np.stack([ds.open_frames(paths["lq"]["raw"]).read(f"000/{i:08d}") for i in range(3)])
    src_gt = np.stack([ds.open_frames(paths["gt"]).read(f"000/{i:08d}") for i in range(3)])
    common = dict(num_frames=3, gt_patch_size=20, clips=["000"], crf_raw_prob=1.0, seed=0)
    data = ds.VideoSRTrainDataset(paths["gt"], paths["lq"], reverse_prob=1, flip_prob=1, transpose_prob=1, **common)
    sample = data[0]

    def expected(x):  # reverse, horizontal flip, vertical flip, transpose
        return x[::-1, ::-1, ::-1].transpose(0, 2, 1, 3)

    assert np.array_equal(as_uint8(sample["lq"]), expected(src_lq))
    assert np.array_equal(as_uint8(sample["gt"]), expected(src_gt))
    plain = ds.VideoSRTrainDataset(paths["gt"], paths["lq"], reverse_prob=0, flip_prob=0, transpose_prob=0, **common)[0]
    assert np.array_equal(as_uint8(plain["lq"]), src_lq) and np.array_equal(as_uint8(plain["gt"]), src_gt)
    # Each augmentation alone hits about half the samples, and LQ/GT stay aligned throughout.
    data = ds.VideoSRTrainDataset(
        paths["gt"], paths["lq"], num_frames=3, gt_patch_size=20, crf_raw_prob=1.0, samples_per_epoch=200, seed=5
    )
    flipped = 0
    for i in range(len(data)):
        sample = data[i]
        check_sample(sample, 3, 5)
        flipped += not np.array_equal(as_uint8(sample["lq"])[..., 0], src_lq[..., 0])
    assert 0.85 * 200 < flipped < 200  # 1 - 1/16 of samples differ from the source (~187.5)


def test_published_crf_mix_frequencies():
    rng = np.random.default_rng(0)
    levels = [ds.level_label(x) for x in LEVELS]
    n = 40_000
    draws = [ds.draw_crf_level(rng, levels, 0.5) for _ in range(n)]
    freq = {label: draws.count(label) / n for label in levels}
    # raw 0.5 + 0.5/4 = 0.625, each CRF 0.125; 5 sigma is < 0.013
    assert abs(freq["raw"] - 0.625) < 0.013
    for label in ("15", "25", "35"):
        assert abs(freq[label] - 0.125) < 0.01
    assert {ds.draw_crf_level(rng, levels, 1.0) for _ in range(100)} == {"raw"}


def test_crf_mix_through_the_dataset(tmp_path):
    paths = build_sets(tmp_path, clips=("000",), n_frames=2, lq_hw=(1, 1))
    data = ds.VideoSRTrainDataset(
        paths["gt"], paths["lq"], num_frames=1, gt_patch_size=4, samples_per_epoch=1600, seed=3
    )
    counts = {}
    for i in range(len(data)):
        sample = data[i]
        assert as_uint8(sample["lq"])[0, 0, 0, 2] == LEVEL_CODE[sample["crf"]]  # read from that level
        counts[sample["crf"]] = counts.get(sample["crf"], 0) + 1
    assert abs(counts["raw"] / 1600 - 0.625) < 0.05  # 4 sigma
    assert all(abs(counts[x] / 1600 - 0.125) < 0.035 for x in ("15", "25", "35"))


def test_crf_per_frame_and_mirroring(tmp_path):
    paths = build_sets(tmp_path, clips=("000",), n_frames=7, lq_hw=(2, 2))
    data = ds.VideoSRTrainDataset(
        paths["gt"],
        paths["lq"],
        num_frames=7,
        gt_patch_size=8,
        crf_per_frame=True,
        reverse_prob=0,
        mirror_passes=2,
        samples_per_epoch=30,
        seed=0,
    )
    mixed = 0
    for i in range(len(data)):
        sample = data[i]
        assert sample["lq"].shape[0] == 28 and sample["gt"].shape[0] == 28
        lq8 = as_uint8(sample["lq"])
        order = lq8[:, 0, 0, 1].tolist()
        assert order == [0, 10, 20, 30, 40, 50, 60, 60, 50, 40, 30, 20, 10, 0] * 2
        labels = sample["crf"].split(",")
        assert [LEVEL_CODE[label] for label in labels] == lq8[:, 0, 0, 2].tolist()
        mixed += len(set(labels)) > 1
    assert mixed > 20  # 7 independent draws: almost always more than one level


def test_levels_must_exist_and_clips_must_match(tmp_path):
    paths = build_sets(tmp_path, clips=("000", "001"))
    with pytest.raises(FTVSRError, match=r"\['35'\]"):
        ds.VideoSRTrainDataset(paths["gt"], {k: v for k, v in paths["lq"].items() if k != 35}, 4, 16)
    only_raw = ds.VideoSRTrainDataset(paths["gt"], {"raw": paths["lq"]["raw"]}, 4, 16, crf_raw_prob=1.0)
    assert set(only_raw.lq) == {"raw"}
    with pytest.raises(FTVSRError, match="fewer than num_frames"):
        ds.VideoSRTrainDataset(paths["gt"], paths["lq"], 7, 16)
    with pytest.raises(FTVSRError, match="multiple of scale"):
        ds.VideoSRTrainDataset(paths["gt"], paths["lq"], 4, 18)
    with pytest.raises(FTVSRError, match="smaller than the LQ patch"):
        ds.VideoSRTrainDataset(paths["gt"], paths["lq"], 4, 32, seed=0)[0]
    with pytest.raises(FTVSRError, match="'002' is not in the GT"):
        ds.VideoSRTrainDataset(paths["gt"], paths["lq"], 4, 16, clips=["002"])
    import shutil

    shutil.rmtree(paths["lq"][25] / "001")
    with pytest.raises(FTVSRError, match="'001' is missing from the LQ source for 25"):
        ds.VideoSRTrainDataset(paths["gt"], paths["lq"], 4, 16)


def test_scale_mismatch_is_reported(tmp_path):
    paths = build_sets(tmp_path, clips=("000",))
    write_clip(tmp_path / "small_gt/000", np.zeros((6, 20, 28, 3), np.uint8))
    with pytest.raises(FTVSRError, match="expected 4 x the LQ"):
        ds.VideoSRTrainDataset(tmp_path / "small_gt", paths["lq"], 4, 16, seed=0)[0]


def test_determinism_with_a_seed(sets):
    def run(seed, epoch=0):
        data = ds.VideoSRTrainDataset(
            sets["gt"], sets["lq"], num_frames=3, gt_patch_size=8, samples_per_epoch=6, seed=seed
        )
        data.set_epoch(epoch)
        return [data[i] for i in range(6)]

    a, b, c, d = run(7), run(7), run(8), run(7, epoch=1)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["lq"], y["lq"]) and torch.equal(x["gt"], y["gt"]) and x["crf"] == y["crf"]
    assert any(not torch.equal(x["lq"], y["lq"]) for x, y in zip(a, c, strict=True))
    assert any(not torch.equal(x["lq"], y["lq"]) for x, y in zip(a, d, strict=True))


def test_determinism_with_torch_seeding(sets):
    """seed=None: samples follow torch's generator (torch.manual_seed in the main process)."""
    data = ds.VideoSRTrainDataset(sets["gt"], sets["lq"], num_frames=3, gt_patch_size=8, samples_per_epoch=8)

    def run(seed):
        torch.manual_seed(seed)
        loader = DataLoader(data, batch_size=2, shuffle=True)
        return [(batch["lq"], batch["crf"]) for batch in loader]

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(first, again, strict=True))
    assert any(not torch.equal(x[0], y[0]) for x, y in zip(first, other, strict=True))


def test_dataloader_with_two_workers_on_lmdb(tmp_path):
    paths = build_sets(tmp_path, clips=("000", "001", "002"))
    gt = pack_lmdb(paths["gt"], tmp_path / "gt.lmdb", progress=False)
    lq = {level: pack_lmdb(p, tmp_path / f"{level}.lmdb", progress=False) for level, p in paths["lq"].items()}
    data = ds.VideoSRTrainDataset(gt, lq, num_frames=4, gt_patch_size=16, samples_per_epoch=12)
    data[0]  # the main process opens its handles before the workers fork

    def run(seed):
        loader = DataLoader(data, batch_size=3, num_workers=2, generator=torch.Generator().manual_seed(seed))
        return list(loader)

    batches = run(0)
    assert len(batches) == 4
    for batch in batches:
        assert batch["lq"].shape == (3, 4, 3, 4, 4) and batch["gt"].shape == (3, 4, 3, 16, 16)
        for j in range(3):
            check_sample({"lq": batch["lq"][j], "gt": batch["gt"][j], "crf": batch["crf"][j]}, 4, 4)
    # workers seeded apart (identical seeds would pair the 12 samples up into 6 copies)
    crops = {tuple(b["lq"][j].flatten().tolist()) for b in batches for j in range(3)}
    assert len(crops) >= 10
    # the DataLoader's generator seeds the workers: the same seed gives the same samples
    again = run(0)
    assert all(torch.equal(x["lq"], y["lq"]) and x["crf"] == y["crf"] for x, y in zip(batches, again, strict=True))


def test_reds_split_and_the_reds4_leak(tmp_path):
    clips = ("000", "001", "011", "015", "020", "240")
    paths = build_sets(tmp_path, clips=clips, n_frames=4)
    train, test = ds.reds_split(clips)
    assert train == ["001", "240"] and test == ["000", "011", "015", "020"]
    assert ds.reds_split(clips, leak_reds4=True)[0] == list(clips)
    assert ds.reds_split(clips, partition="official") == (["000", "001", "011", "015", "020"], ["240"])
    assert ds.reds_split(clips, partition="official", leak_reds4=True)[0] == ["000", "001", "011", "015", "020"]
    with pytest.raises(FTVSRError, match="partition"):
        ds.reds_split(clips, partition="REDS5")
    full = [f"{i:03d}" for i in range(270)]
    assert len(ds.reds_split(full)[0]) == 266 and len(ds.reds_split(full, leak_reds4=True)[0]) == 270

    data = ds.reds_train_dataset(paths["gt"], paths["lq"], num_frames=4, gt_patch_size=16)
    assert data.clips == ["001", "240"] and data.num_frames == 4 and data.gt_patch_size == 16
    leaky = ds.reds_train_dataset(paths["gt"], paths["lq"], num_frames=4, gt_patch_size=16, leak_reds4=True)
    assert leaky.clips == list(clips)
    assert ds.reds_train_dataset.__kwdefaults__["num_frames"] == 40
    assert ds.reds_train_dataset.__kwdefaults__["gt_patch_size"] == 256
    test_set = ds.reds4_test_dataset(paths["gt"], paths["lq"]["raw"])
    assert [test_set[i]["clip"] for i in range(len(test_set))] == ["000", "011", "015", "020"]


def test_vimeo90k_train_dataset(tmp_path):
    keys = ["00001/0001", "00001/0266"]
    paths = build_sets(tmp_path, clips=[ds.vimeo_clip_name(k) for k in keys], n_frames=7, lq_hw=(4, 4))
    (tmp_path / "sep_trainlist.txt").write_text("00001/0001\n00001/0266 (256,448,3)\n\n")
    data = ds.vimeo90k_train_dataset(paths["gt"], paths["lq"], tmp_path / "sep_trainlist.txt", gt_patch_size=16, seed=0)
    assert data.clips == ["00001_0001", "00001_0266"]
    assert (data.num_frames, data.reverse_prob, data.mirror_passes, data.crf_per_frame) == (7, 0.0, 2, False)
    sample = data[1]
    assert sample["lq"].shape == (28, 3, 4, 4) and sample["gt"].shape == (28, 3, 16, 16)
    assert "," not in sample["crf"]
    published = ds.vimeo90k_train_dataset(
        paths["gt"], paths["lq"], tmp_path / "sep_trainlist.txt", gt_patch_size=16, crf_per_frame=True, seed=0
    )
    assert len(published[0]["crf"].split(",")) == 28
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(FTVSRError, match="names no clips"):
        ds.read_vimeo_list(tmp_path / "empty.txt")


def test_test_dataset_returns_whole_clips(sets):
    data = ds.VideoSRTestDataset(sets["gt"], sets["lq"]["raw"])
    assert len(data) == 2
    sample = data[1]
    assert sample["clip"] == "001"
    assert sample["lq"].shape == (6, 3, 6, 7) and sample["gt"].shape == (6, 3, 24, 28)
    lq8, gt8 = as_uint8(sample["lq"]), as_uint8(sample["gt"])
    assert lq8[:, 0, 0, 1].tolist() == [1, 11, 21, 31, 41, 51]  # all frames, in order
    assert np.array_equal(lq8.repeat(4, 1).repeat(4, 2)[..., :2], gt8[..., :2])
    first3 = ds.VideoSRTestDataset(sets["gt"], sets["lq"]["raw"], clips=["001"], num_frames=3)[0]
    assert first3["lq"].shape[0] == 3
    with pytest.raises(FTVSRError, match="'calendar' is not in the GT"):
        ds.vid4_test_dataset(sets["gt"], sets["lq"]["raw"])


def test_open_frames_picks_the_backend(tmp_path):
    paths = build_sets(tmp_path, clips=("000",), n_frames=2)
    folder = ds.open_frames(paths["gt"])
    packed = ds.open_frames(pack_lmdb(paths["gt"], tmp_path / "gt.lmdb", progress=False))
    assert isinstance(folder, ds.FolderFrames) and type(packed).__name__ == "LmdbFrames"
    assert folder.clips() == packed.clips() == {"000": ["00000000", "00000001"]}
    assert np.array_equal(folder.read("000/00000001"), packed.read("000/00000001"))
    with pytest.raises(FTVSRError, match="not in set folder"):
        folder.read("000/00000009")
    with pytest.raises(FTVSRError, match="not found"):
        ds.open_frames(tmp_path / "nothing")
