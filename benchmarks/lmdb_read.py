"""LMDB vs frame-folder read throughput, through the training Dataset, side by side.

Builds a small synthetic REDS-like set (GT frames panning over natural images, LQ = GT / 4
with bicubic, one LQ set per compression level), packs each set into an LMDB, then times

- raw frame reads (`FolderFrames.read` vs `LmdbFrames.read`, every frame once), and
- training samples (`VideoSRTrainDataset`: a window of LQ + GT frames, crop, flips),

reporting frames/s (LQ and GT frames both counted) and the LMDB / folder ratio; each number
is the best of `--repeats` interleaved runs (timings are noisy when other work shares the
cores). Files were just written, so both backends read from the OS page cache: this measures
decoding and per-file overhead, not cold-disk seeks or network file systems (where one LMDB
file gains more). PNG decoding dominates both; `--compress-level 0` stores frames
uncompressed in the LMDB (about 2.3x larger) to decode faster.

    python benchmarks/lmdb_read.py                       # 640x360 GT, ~1 minute on 1 core
    python benchmarks/lmdb_read.py --gt-size 1280x720 --samples 20 --workers 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata
from torch.utils.data import DataLoader

from ftvsr.data.datasets import FolderFrames, VideoSRTrainDataset
from ftvsr.io.frames import write_clip
from ftvsr.io.lmdb_store import LmdbFrames, pack_lmdb

LEVELS = ("raw", 15, 25, 35)


def synth_clip(image: np.ndarray, n: int, width: int, height: int) -> np.ndarray:
    """`n` frames of a slow pan over `image` resized to 1.25x the frame: uint8 (n, h, w, 3)."""
    big = np.asarray(
        Image.fromarray(image).convert("RGB").resize((int(width * 1.25), int(height * 1.25)), Image.BICUBIC)
    )
    dx = np.linspace(0, big.shape[1] - width, n).astype(int)
    dy = np.linspace(0, big.shape[0] - height, n).astype(int)
    return np.stack([big[y : y + height, x : x + width] for x, y in zip(dx, dy, strict=True)])


def build(root: Path, clips: int, frames: int, width: int, height: int, compress_level: int) -> dict:
    images = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
    for c in range(clips):
        gt = synth_clip(images[c % len(images)], frames, width, height)
        write_clip(root / "gt" / f"{c:03d}", gt)
        lq = np.stack([np.asarray(Image.fromarray(f).resize((width // 4, height // 4), Image.BICUBIC)) for f in gt])
        for level in LEVELS:
            write_clip(root / f"lq_{level}" / f"{c:03d}", lq)
    folders = {"gt": root / "gt", "lq": {level: root / f"lq_{level}" for level in LEVELS}}
    lmdbs = {
        "gt": pack_lmdb(root / "gt", root / "gt.lmdb", compress_level=compress_level, progress=False),
        "lq": {
            crf: pack_lmdb(p, root / f"lq_{crf}.lmdb", compress_level=compress_level, progress=False)
            for crf, p in folders["lq"].items()
        },
    }
    return {"folder": folders, "lmdb": lmdbs}


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def time_raw_reads(source, repeats: int) -> float:
    keys = [f"{clip}/{frame}" for clip, frames in source.clips().items() for frame in frames]
    source.read(keys[0])
    start = time.perf_counter()
    for _ in range(repeats):
        for key in keys:
            source.read(key)
    return repeats * len(keys) / (time.perf_counter() - start)


def time_samples(dataset: VideoSRTrainDataset, workers: int) -> float:
    loader = DataLoader(dataset, batch_size=1, num_workers=workers, generator=torch.Generator().manual_seed(0))
    start = None
    count = 0
    for i, batch in enumerate(loader):
        if i == 0:  # the first batch pays for worker start-up and handle opening
            start = time.perf_counter()
            continue
        count += batch["lq"].shape[1] + batch["gt"].shape[1]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gt-size", default="640x360", help="GT frame WxH (multiple of 4)")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=20, help="frames per clip")
    parser.add_argument("--num-frames", type=int, default=10, help="window length of a sample")
    parser.add_argument("--patch", type=int, default=256, help="GT patch size")
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--compress-level", type=int, default=1, help="PNG level in the LMDB (BasicSR: 1)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steadier timings when other work shares the cores)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep the data here")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.gt_size.lower().split("x"))

    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        sets = build(root, args.clips, args.frames, width, height, args.compress_level)
        results = {
            "gt_size": [width, height],
            "clips": args.clips,
            "frames": args.frames,
            "num_frames": args.num_frames,
            "patch": args.patch,
            "samples": args.samples,
            "workers": args.workers,
            "compress_level": args.compress_level,
            "backends": {},
        }
        raw = {backend: 0.0 for backend in sets}
        samples = {backend: 0.0 for backend in sets}
        for _ in range(args.repeats):
            for backend, paths in sets.items():
                gt = FolderFrames(paths["gt"]) if backend == "folder" else LmdbFrames(paths["gt"])
                dataset = VideoSRTrainDataset(
                    paths["gt"], paths["lq"], args.num_frames, args.patch, samples_per_epoch=args.samples + 1, seed=0
                )
                raw[backend] = max(raw[backend], time_raw_reads(gt, repeats=1))
                samples[backend] = max(samples[backend], time_samples(dataset, args.workers))
        for backend, paths in sets.items():
            results["backends"][backend] = {
                "disk_mb_gt": round(size_mb(paths["gt"]), 1),
                "gt_frames_per_s_raw": round(raw[backend], 1),
                "frames_per_s_dataset": round(samples[backend], 1),
            }
        folder, lmdb = results["backends"]["folder"], results["backends"]["lmdb"]
        results["ratio_raw"] = round(lmdb["gt_frames_per_s_raw"] / folder["gt_frames_per_s_raw"], 2)
        results["ratio_dataset"] = round(lmdb["frames_per_s_dataset"] / folder["frames_per_s_dataset"], 2)

    print(
        f"GT {width}x{height}, {args.clips} clips x {args.frames} frames; samples of "
        f"{args.num_frames} frames, GT patch {args.patch}, {args.samples} samples, "
        f"{args.workers} workers, {args.threads} torch thread(s), LMDB PNG level "
        f"{args.compress_level}, best of {args.repeats}"
    )
    print(f"{'backend':<8} {'GT MB':>8} {'GT frames/s (raw read)':>24} {'frames/s (Dataset, LQ+GT)':>27}")
    for name, row in results["backends"].items():
        print(f"{name:<8} {row['disk_mb_gt']:>8} {row['gt_frames_per_s_raw']:>24} {row['frames_per_s_dataset']:>27}")
    print(f"{'ratio':<8} {'':>8} {results['ratio_raw']:>23}x {results['ratio_dataset']:>26}x  (LMDB / folder)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
