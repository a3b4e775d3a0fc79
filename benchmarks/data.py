"""Throughput of the data stages: frames per second with 1 and N worker processes, side by side.

    python benchmarks/data.py                      # 4 clips x 64 frames of 720p, BD, CRF 25
    python benchmarks/data.py --clips 8 --frames 16 --workers 4 --method bi

The HR clips are centre crops of the embedded ``bigbuckbunny`` sample (1280x720: REDS's
size), written once to a temporary folder; their LR frames (BD/BI) then feed compression.
Each timing is one whole ``degrade_folder`` / ``compress_folder`` call into an empty folder,
pool start-up included, so the ratio is what a pipeline run gets. Numbers depend on the
machine's free cores: run it on an otherwise idle machine. The CPU time per frame (this
process and its children) shows the work each setting does whatever the load: equal CPU
per frame with 1 and N workers means the parallel run adds no work, only start-up.

Measured on an idle 2-core x86-64 CPU (AMD EPYC), 2 workers against 1:

    4 clips x 64 frames:   degrade BD 29.0 -> 49.5 fps (1.71x), compress CRF 25 102.5 -> 132.6 fps (1.29x)
    8 clips x 100 frames:  degrade BD 28.5 -> 50.5 fps (1.78x), compress CRF 25 120.2 -> 175.7 fps (1.46x)

With 2 workers both stages keep the 2 cores busy (CPU ms/frame x fps: 1.97 and 1.93 cores);
what is missing from 2x is CPU per frame growing when two run side by side (35 -> 39 ms
degrade, 9 -> 11 ms compress: shared cache and memory bandwidth) and, for compress, a single
worker that already uses 1.08 cores (ffmpeg encodes while Python reads and decodes frames).

Video probing and decoding alone, the former ffmpeg subprocess against PyAV side by side:
``python benchmarks/video_decode.py`` (figures in its docstring).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ftvsr.data.compress import compress_folder
from ftvsr.data.degrade import degrade_folder
from ftvsr.data.sample import sample_video_path
from ftvsr.io.frames import write_clip
from ftvsr.io.video import iter_video


def make_hr_set(root: Path, clips: int, frames: int, height: int, width: int) -> int:
    """Write `clips` HR clips of `frames` frames cut from bigbuckbunny; returns the frame total."""
    video = sample_video_path("bigbuckbunny")
    needed = clips * frames
    decoded = []
    for frame in iter_video(video):
        top, left = (frame.shape[0] - height) // 2, (frame.shape[1] - width) // 2
        decoded.append(frame[top : top + height, left : left + width].copy())
        if len(decoded) == needed:
            break
    while len(decoded) < needed:  # the video has 132 frames: wrap around for larger sets
        decoded.append(decoded[len(decoded) % 132])
    for c in range(clips):
        write_clip(root / f"{c:03d}", np.stack(decoded[c * frames : (c + 1) * frames]))
    return needed


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers, ffmpeg)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    run()
    return time.perf_counter() - wall, _cpu_seconds() - cpu


def bench_degrade(hr: Path, out: Path, method: str, workers: int) -> tuple[float, float]:
    return timed(lambda: degrade_folder(hr, out, method=method, workers=workers, progress=False))


def bench_compress(lr: Path, out: Path, crf: int, workers: int) -> tuple[float, float]:
    return timed(lambda: compress_folder(lr, out, crf=crf, workers=workers, progress=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=64, help="frames per clip")
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--method", choices=["bd", "bi"], default="bd")
    parser.add_argument("--crf", type=int, default=25)
    parser.add_argument("--workers", type=int, default=2, help="the parallel run's worker count")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ftvsr-bench-") as scratch:
        root = Path(scratch)
        total = make_hr_set(root / "hr", args.clips, args.frames, args.height, args.width)
        rows = []
        seconds = {n: bench_degrade(root / "hr", root / f"lr{n}", args.method, n) for n in (1, args.workers)}
        rows.append((f"degrade {args.method} {args.width}x{args.height}", seconds))
        seconds = {n: bench_compress(root / "lr1", root / f"crf{n}", args.crf, n) for n in (1, args.workers)}
        rows.append((f"compress crf {args.crf} (LR)", seconds))

    n = args.workers
    print(
        f"{args.clips} clips x {args.frames} frames = {total} frames; {os.cpu_count()} CPUs visible, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"{'stage':<30}{'fps, 1 worker':>14}{f'fps, {n} workers':>16}{'ratio':>7}{'CPU ms/frame 1 | ' + str(n):>22}")
    for name, runs in rows:
        (wall1, cpu1), (wall_n, cpu_n) = runs[1], runs[n]
        cpu = f"{1000 * cpu1 / total:.0f} | {1000 * cpu_n / total:.0f}"
        print(f"{name:<30}{total / wall1:>14.1f}{total / wall_n:>16.1f}{wall1 / wall_n:>7.2f}{cpu:>22}")
    print("LMDB vs folder read throughput: python benchmarks/lmdb_read.py")
    print("video probe and decode, ffmpeg subprocess vs PyAV: python benchmarks/video_decode.py")


if __name__ == "__main__":
    main()
