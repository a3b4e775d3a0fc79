"""Paper-scale projections: the data stages at REDS and Vimeo-90K frame size, and REDS4 evaluation before/after.

    python benchmarks/paper_data.py          # ~5 minutes on 2 cores
    python benchmarks/paper_data.py --clips 4 --frames 40 --eval-frames 2,25 --published-frames 2,8 --repeats 2

Data stages. HR frames are cut from the embedded ``bigbuckbunny`` sample (1280x720: REDS's size;
448x256 centre crops: Vimeo-90K's), written once to a temporary folder, and each stage runs on
them in this process (one worker) through the library call the pipeline uses:

- fetch-extract: `ftvsr.data.download.extract` of a zip of PNG frames in REDS's layout
  (``train/train_sharp/<clip>/<frame>.png``, and ``train/train_sharp_bicubic/X4/...`` for LR;
  PNG level 6, deflated; building the zip is not timed);
- degrade: `degrade_folder`, BD and BI;
- compress: `compress_folder` at one CRF (x264, the published settings), LR frames;
- pack: `pack_lmdb` of the HR set and of the LR set;
- loader: `VideoSRTrainDataset` on the packed LMDBs (raw + the CRF), windows with a 256 GT patch
  and the published augmentation, read in this process (what one DataLoader worker does). REDS
  windows are the paper's 40 frames; with fewer frames per clip, shorter windows are timed and
  the rate scaled to 40 frames (reading and decoding whole frames dominates and grows with the
  frame count). Vimeo-90K windows are its 7 frames.

Projections assume that throughput scales linearly with workers (16 processes on 16 free cores,
no shared bottleneck such as the disk), so they are lower bounds. Counts: REDS 270 clips x 100
frames (HR, the X4 LR of the same count, 3 CRFs); Vimeo-90K 64 612 training septuplets x 7
frames (452 284 frames, 448x256 HR). The table notes what the paper profiles run (REDS: raw LR is
the archive's own X4 frames, so no degrade unless `data.regenerate_lr`; Vimeo-90K: BD).

Evaluation. A REDS4-like clip at full size (HR 1280x720, LR 320x180 by BI) is evaluated as the
published protocol does (2x2 crops, 25 frames, bicubic and the network, RGB PSNR/SSIM,
`evaluate_set`) on the CPU, by the code before the speed-up (``--before-ref``: the package at that
commit, extracted with ``git archive``) and by the working tree, each in a fresh process, taking
turns; the per-frame metrics of the two must be identical (checked). Each crop is evaluated
alone in the protocol, so by default one crop (the top-left 640x360 quarter) is timed
(``--crops 4``: the whole clip) at a few frames, and the clip time is projected to 4 crops x 25
frames: in proportion to the frames from one frame count (the default), or along the line through
two (``--published-frames 2,8``): a crop's time is linear in its frame count (per-frame work,
t - 1 flow pairs each way, per-crop fixed costs such as the wide layers' transformed filters,
which the speed-up computes once per crop instead of once per frame). Models:

- tiny: a 1-block FTVSR (mid 16, FTT 64 channels) with SPyNet flows, as `ModelSettings` builds it;
- published: `FTVSR()` defaults (45.8 M parameters), random weights; fewer frames are timed and
  the 25 are projected (the output says so).

`--threads` sets torch's intra-op threads in the evaluation processes (default 1: on two cores
shared with other work, two threads ran 1.5-2x slower than one).

Measured with the defaults (4 min) on a 2-core x86-64 CPU (AMD EPYC, AVX2) shared with other
work (load average 2-3), 1 worker, projected to 16:

    stage                     REDS fr/s  all of REDS   Vimeo fr/s  all of Vimeo-90K
    fetch-extract HR / LR     150 / 1064  11 s / 2 s       680       42 s
    degrade BD / BI           11.3 / 6.2  2.5 / 4.6 min   90 / 70    5.2 / 6.7 min
    compress (x3 CRFs)           21.0       4.0 min        80.2     17.6 min
    pack HR / LR (x4)          6.8 / 63   4.2 / 1.8 min   46 / 286   10.2 / 6.6 min
    loader (windows/s)           0.52     106 h (400k it x 8 GPUs)  12.6   5.4 min (an epoch)

    evaluation of one REDS4 clip, 1 thread   before     after    ratio   metrics
    tiny (1 crop x 4 frames timed)           8.9 min    9.2 min  0.96    identical
    published (1 crop x 4 frames timed)     28.6 min   27.3 min  1.05    identical

The tiny model's time is SPyNet's (flows on the LR and on the 4x first-stage output, ~80 % of
it), which the speed-up does not touch: its ratio is noise. The published model gains from the
wide layers' filters transformed once per crop (~20 % of the frequency transformer's wide
convolutions, ~4 % of the clip) and the faster SSIM; at smaller crops (48 x 80 LR) the same
change saves 15-25 %. A REDS training window of 40 frames costs ~2 s of one worker (decoding 40
whole 1280x720 PNGs for a 256 patch): 16 workers give ~8 windows/s.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ftvsr.data.sample import sample_video_path
from ftvsr.io.video import iter_video

REDS_SIZE = (720, 1280)  # HR (height, width)
VIMEO_SIZE = (256, 448)
REDS_CLIPS, REDS_FRAMES, REDS_CRFS = 270, 100, 3
VIMEO_CLIPS, VIMEO_FRAMES = 64_612, 7
PAPER_ITERATIONS, PAPER_GPUS = 400_000, 8  # REDS: 400k iterations, one 40-frame window per GPU
PROTOCOL_CROPS, PROTOCOL_FRAMES = 4, 25
BEFORE_REF = "9a0aa0cc5ca39d6c38ca6b0381f4cb135835a5dc"  # the last commit before the evaluation speed-up
TINY: dict[str, Any] = dict(mid_channels=16, num_blocks=1, d_model=32, n_heads=2, ftt_channels=64)


# --------------------------------------------------------------------------- frames


def sample_frames(count: int, height: int, width: int) -> list[np.ndarray]:
    """`count` centre crops of bigbuckbunny's frames (132, wrapped around for more)."""
    frames = []
    for frame in iter_video(sample_video_path("bigbuckbunny"), max_frames=count):
        top, left = (frame.shape[0] - height) // 2, (frame.shape[1] - width) // 2
        frames.append(np.ascontiguousarray(frame[top : top + height, left : left + width]))
    return [frames[i % len(frames)] for i in range(count)]


def wall_seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def hms(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# --------------------------------------------------------------------------- data stages


def write_reds_zip(path: Path, clips: int, frames: list[np.ndarray], folder: str = "train/train_sharp") -> None:
    """A zip in REDS's layout, `<folder>/<clip>/<frame>.png`, PNG level 6 (Pillow's default)."""
    from PIL import Image

    per_clip = len(frames) // clips
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for c in range(clips):
            for i in range(per_clip):
                buffer = io.BytesIO()
                Image.fromarray(frames[c * per_clip + i]).save(buffer, format="PNG", compress_level=6)
                zf.writestr(f"{folder}/{c:03d}/{i:08d}.png", buffer.getvalue())


def bench_stages(root: Path, clips: int, per_clip: int, size: tuple[int, int], crf: int, window: int) -> dict:
    """Per-stage throughput at one frame size, one worker: {stage: frames (loader: windows) per second}."""
    from ftvsr.data.compress import compress_folder
    from ftvsr.data.datasets import VideoSRTrainDataset
    from ftvsr.data.degrade import degrade_folder
    from ftvsr.data.download import extract
    from ftvsr.io.frames import read_clip
    from ftvsr.io.lmdb_store import pack_lmdb

    total = clips * per_clip
    root.mkdir(parents=True, exist_ok=True)
    write_reds_zip(root / "hr.zip", clips, sample_frames(total, *size))
    out: dict[str, float] = {}
    wall = wall_seconds(lambda: extract(root / "hr.zip", root / "extracted", progress=False))
    out["extract"] = total / wall
    hr = root / "extracted" / "train" / "train_sharp"
    for method in ("bd", "bi"):
        wall = wall_seconds(
            functools.partial(degrade_folder, hr, root / f"lr_{method}", method, workers=1, progress=False)
        )
        out[f"degrade_{method}"] = total / wall
    lr = root / "lr_bi"
    # the X4 zip: LR frames in REDS's layout
    lr_frames = [f for c in sorted(p.name for p in lr.iterdir()) for f in read_clip(lr / c)]
    write_reds_zip(root / "lr.zip", clips, lr_frames, "train/train_sharp_bicubic/X4")
    wall = wall_seconds(lambda: extract(root / "lr.zip", root / "extracted_lr", progress=False))
    out["extract_lr"] = total / wall
    wall = wall_seconds(lambda: compress_folder(lr, root / f"crf{crf}", crf=crf, workers=1, progress=False))
    out["compress"] = total / wall
    wall = wall_seconds(lambda: pack_lmdb(hr, root / "hr.lmdb", progress=False))
    out["pack_hr"] = total / wall
    wall = wall_seconds(lambda: pack_lmdb(lr, root / "lr.lmdb", progress=False))
    out["pack_lr"] = total / wall
    pack_lmdb(root / f"crf{crf}", root / f"crf{crf}.lmdb", progress=False)

    frames = min(window, per_clip)
    samples = max(4, clips * 2)
    dataset = VideoSRTrainDataset(
        root / "hr.lmdb",
        {"raw": root / "lr.lmdb", crf: root / f"crf{crf}.lmdb"},
        num_frames=frames,
        gt_patch_size=min(256, *size),
        crf_levels=["raw", crf],
        samples_per_epoch=samples + 1,
        seed=0,
    )
    dataset[0]  # opens the LMDBs
    start = time.perf_counter()
    for i in range(1, samples + 1):
        dataset[i]
    out["loader"] = samples / (time.perf_counter() - start) * frames / window  # windows of `window` frames / s
    out["loader_frames"] = frames
    return out


# --------------------------------------------------------------------------- evaluation


def make_eval_sets(root: Path, frames: int) -> dict[str, tuple[Path, Path]]:
    """A REDS4-like clip at full size and its top-left protocol crop: {name: (lq_dir, gt_dir)}."""
    from ftvsr.data.degrade import bi_degrade
    from ftvsr.io.frames import write_clip

    gt = np.stack(sample_frames(frames, *REDS_SIZE))
    lq = np.stack([bi_degrade(f) for f in gt])
    h, w = lq.shape[1] // 2, lq.shape[2] // 2
    sets = {}
    for name, (gt_clip, lq_clip) in {
        "full": (gt, lq),
        "crop": (gt[:, : 4 * h, : 4 * w], lq[:, :h, :w]),
    }.items():
        write_clip(root / name / "gt" / "000", np.ascontiguousarray(gt_clip))
        write_clip(root / name / "lq" / "000", np.ascontiguousarray(lq_clip))
        sets[name] = (root / name / "lq", root / name / "gt")
    return sets


def eval_child(spec: dict) -> None:
    """Run in a fresh process (the old or the new package first on sys.path): time `evaluate_set`."""
    import torch

    import ftvsr
    from ftvsr.evaluate import evaluate_set
    from ftvsr.models import FTVSR

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    model = (FTVSR(**TINY) if spec["model"] == "tiny" else FTVSR()).eval()
    wall, cpu = time.perf_counter(), time.process_time()
    frames = evaluate_set(
        spec["lq"],
        spec["gt"],
        model=model,
        dataset="reds4",
        crf="raw",
        protocol=spec["protocol"],
        test_frames=spec["frames"],
        progress=False,
    )
    result = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "package": ftvsr.__file__}
    frames.to_csv(spec["csv"], index=False, float_format="%.17g")
    print(json.dumps(result))


def run_child(spec: dict, pythonpath: str | None) -> dict:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"evaluation process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def old_package(root: Path, ref: str) -> Path | None:
    """The `ftvsr` package at commit `ref`, extracted under `root` (None if git cannot provide it)."""
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(repo), "archive", ref, "ftvsr"], capture_output=True, check=False)
    if archive.returncode != 0:
        return None
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


def bench_eval(
    root: Path, sets: dict, old_root: Path | None, model: str, frame_counts: list[int], crops: int, args
) -> dict:
    """Before / after timings of one evaluation at each frame count, projected to one clip (4 crops x 25 frames).

    The time of a crop is linear in its frame count t (per-frame work, t - 1 flow pairs each way,
    per-crop fixed costs); with two frame counts both terms are fitted, with one the fixed cost
    is taken as zero (time proportional to t).
    """
    name, protocol = ("full", "published") if crops == PROTOCOL_CROPS else ("crop", "full")
    lq, gt = sets[name]
    variants = ["before", "after"] if old_root is not None else ["after"]
    walls: dict[str, dict[int, float]] = {v: {} for v in variants}
    cpus: dict[str, dict[int, float]] = {v: {} for v in variants}
    identical = True
    for frames in frame_counts:
        csvs = {}
        for _ in range(args.repeats):
            for which in variants:
                csvs[which] = root / f"{model}_{frames}_{which}.csv"
                spec = dict(lq=str(lq), gt=str(gt), model=model, protocol=protocol, frames=frames)
                spec.update(threads=args.threads, csv=str(csvs[which]))
                result = run_child(spec, str(old_root) if which == "before" else None)
                if result["wall"] < walls[which].get(frames, float("inf")):
                    walls[which][frames], cpus[which][frames] = result["wall"], result["cpu"]
        if len(csvs) == 2:
            identical = identical and csvs["before"].read_text() == csvs["after"].read_text()
    per_clip = PROTOCOL_CROPS // crops  # runs of this size in one clip
    out: dict = {"model": model, "frames": frame_counts, "crops": crops, "identical": identical if old_root else None}
    for which in variants:
        points = sorted(walls[which].items())
        if len(points) >= 2:
            (t1, w1), (t2, w2) = points[0], points[-1]
            slope = (w2 - w1) / (t2 - t1)
            fixed = w1 - slope * t1
        else:
            (t1, w1) = points[0]
            slope, fixed = w1 / t1, 0.0
        out[which] = {
            "walls": walls[which],
            "cpus": cpus[which],
            "fixed": fixed,
            "per_frame": slope,
            "clip": per_clip * (fixed + slope * PROTOCOL_FRAMES),
        }
    return out


# --------------------------------------------------------------------------- report


def print_stages(reds: dict, vimeo: dict, crf: int, workers: int) -> None:
    reds_frames = REDS_CLIPS * REDS_FRAMES
    vimeo_frames = VIMEO_CLIPS * VIMEO_FRAMES
    rows = [
        # stage, key, REDS items, what the paper profile does, Vimeo-90K items, what paper-vimeo does
        ("fetch-extract HR", "extract", reds_frames, "train/val_sharp zips", vimeo_frames, "septuplet zip"),
        ("fetch-extract LR", "extract_lr", reds_frames, "X4 zips: the raw LR", 0, "-"),
        ("degrade BD", "degrade_bd", reds_frames, "not run (Vid4 only)", vimeo_frames, "the raw LR"),
        ("degrade BI", "degrade_bi", reds_frames, "with regenerate_lr", vimeo_frames, "not run"),
        (f"compress CRF {crf} (x3 CRFs)", "compress", REDS_CRFS * reds_frames, "LR frames", 3 * vimeo_frames, "LR"),
        ("pack HR", "pack_hr", reds_frames, "HR frames", vimeo_frames, "HR"),
        ("pack LR (raw + 3 CRFs)", "pack_lr", 4 * reds_frames, "LR frames", 4 * vimeo_frames, "LR"),
        ("loader", "loader", PAPER_ITERATIONS * PAPER_GPUS, "400k it x 8 GPUs", VIMEO_CLIPS, "one epoch"),
    ]
    print(f"\nData stages: rate with 1 worker; wall time projected to {workers} workers (linear scaling assumed)")
    print(
        f"{'stage':<28}{'REDS rate/s':>13}{'items':>11}{'wall':>9}  {'paper profile':<22}"
        f"{'Vimeo rate/s':>13}{'items':>10}{'wall':>9}  paper-vimeo"
    )
    for name, key, reds_items, reds_note, vimeo_items, vimeo_note in rows:
        unit = "win" if key == "loader" else "fr"
        line = f"{name:<28}{reds[key]:>9.2f} {unit:<3}{reds_items:>11,}{hms(reds_items / reds[key] / workers):>9}"
        line += f"  {reds_note:<22}"
        if vimeo_items:
            wall = hms(vimeo_items / vimeo[key] / workers)
            line += f"{vimeo[key]:>9.2f} {unit:<3}{vimeo_items:>10,}{wall:>9}  {vimeo_note}"
        else:
            line += f"{'-':>13}{'-':>10}{'-':>9}  {vimeo_note}"
        print(line)
    print(
        "REDS: 270 clips x 100 frames, HR 1280x720, LR 320x180; Vimeo-90K: 64,612 septuplets, HR 448x256, LR 112x64. "
        f"Loader: windows of 40 (REDS) / 7 (Vimeo) frames, GT patch 256; timed with {reds['loader_frames']}-frame "
        "windows at REDS size and scaled to 40. No download time is included."
    )


def print_eval(results: list[dict], threads: int) -> None:
    print(
        "\nEvaluation of one REDS4 clip at full width (1280x720 HR; published protocol: 2x2 crops of 640x360, "
        f"25 frames, bicubic + the network, RGB PSNR/SSIM), CPU, {threads} torch thread(s)"
    )
    print(
        f"{'model':<10}{'timed: crops x frames':>23}{'wall before s':>15}{'after s':>10}{'ratio':>7}"
        f"{'clip before':>13}{'clip after':>12}{'ratio':>7}  metrics before = after"
    )
    for r in results:
        before, after = r.get("before"), r["after"]
        for k, frames in enumerate(r["frames"]):
            wall_b = before["walls"][frames] if before else float("nan")
            wall_a = after["walls"][frames]
            timed_what = f"{r['crops']} x {frames}"
            line = f"{r['model'] if k == 0 else '':<10}{timed_what:>23}{wall_b:>15.1f}{wall_a:>10.1f}"
            line += f"{wall_b / wall_a:>7.2f}"
            if k == len(r["frames"]) - 1:
                clip_b = hms(before["clip"]) if before else "-"
                ratio = f"{before['clip'] / after['clip']:.2f}" if before else "-"
                same = {True: "identical", False: "DIFFER", None: "-"}[r["identical"]]
                line += f"{clip_b:>13}{hms(after['clip']):>12}{ratio:>7}  {same}"
            print(line)
        for which, row in (("before", before), ("after", after)):
            if row:
                line = f"{row['fixed']:+.1f} s {row['per_frame']:+.2f} s x t (fitted)"
                if len(r["frames"]) == 1:
                    line = f"{row['per_frame']:.2f} s x t (proportional)"
                cpu = " / ".join(f"{c:.1f}" for c in row["cpus"].values())
                print(f"{'':<10}  {which}: a crop of t frames takes {line}; CPU {cpu} s")
    print(
        "clip = 4 crops x the time of a crop at t = 25 frames (the crops of a clip are the same size): fewer frames "
        "were timed and the clip projected, from one frame count in proportion to t (which slightly underestimates "
        "the flows, t - 1 pairs, and overcounts per-crop fixed costs such as the filters the speed-up transforms once "
        "per crop), from two by the line through them (a negative intercept: flows on t - 1 pairs). "
        "tiny: a 1-block FTVSR with SPyNet flows; published: FTVSR() defaults, 45.8 M parameters, random weights. "
        "On a shared machine single runs vary by ~10 %: --repeats keeps the fastest of several."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2, help="clips per data set (REDS size)")
    parser.add_argument("--frames", type=int, default=12, help="frames per clip (REDS size)")
    parser.add_argument("--vimeo-clips", type=int, default=8, help="septuplets at Vimeo-90K size")
    parser.add_argument("--crf", type=int, default=25)
    parser.add_argument("--workers", type=int, default=16, help="workers the projections assume")
    parser.add_argument(
        "--eval-frames", default="4", help="frame counts timed with the tiny model, comma-separated ('': skip)"
    )
    parser.add_argument(
        "--published-frames", default="4", help="frame counts timed with the published model ('': skip)"
    )
    parser.add_argument(
        "--crops", type=int, default=1, choices=[1, 4], help="crops timed (4: the whole clip, published protocol)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the evaluation processes")
    parser.add_argument("--repeats", type=int, default=1, help="evaluation runs each (the fastest is kept)")
    parser.add_argument("--before-ref", default=BEFORE_REF, help="git commit of the code before the speed-up")
    parser.add_argument("--skip-data", action="store_true", help="only the evaluation")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        eval_child(json.loads(args.child))
        return

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ftvsr-paper-bench-") as scratch:
        root = Path(scratch)
        if not args.skip_data:
            reds = bench_stages(root / "reds", args.clips, args.frames, REDS_SIZE, args.crf, 40)
            vimeo = bench_stages(root / "vimeo", args.vimeo_clips, VIMEO_FRAMES, VIMEO_SIZE, args.crf, VIMEO_FRAMES)
        evals = []
        tiny_frames = [int(v) for v in args.eval_frames.split(",") if v.strip()]
        published_frames = [int(v) for v in args.published_frames.split(",") if v.strip()]
        if tiny_frames or published_frames:
            old_root = old_package(root / "before", args.before_ref)
            if old_root is None:
                print(f"(git cannot provide commit {args.before_ref}: timing the working tree only)")
            sets = make_eval_sets(root / "eval", max(tiny_frames + published_frames))
            for model, counts in (("tiny", tiny_frames), ("published", published_frames)):
                if counts:
                    evals.append(bench_eval(root, sets, old_root, model, counts, args.crops, args))

    print(
        f"{os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f} at the end, "
        f"{time.perf_counter() - start:.0f} s in all"
    )
    if not args.skip_data:
        print(
            f"data: REDS size {args.clips} clips x {args.frames} frames, "
            f"Vimeo-90K size {args.vimeo_clips} clips x 7 frames"
        )
        print_stages(reds, vimeo, args.crf, args.workers)
    if evals:
        print_eval(evals, args.threads)


if __name__ == "__main__":
    main()
