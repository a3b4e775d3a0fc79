"""How far temporal chunks and spatial tiles move `super_resolve` away from the one-pass result.

Chunks: the clip is super-resolved in one pass, then in chunks of `--chunk` frames for each
`--overlaps` value; for every frame, the PSNR against the ground truth of the chunked output
minus that of the one-pass output (ΔPSNR, dB), and the PSNR of the chunked output against the
one-pass output (the seam is "invisible" where that is high and ΔPSNR is ~0). The frames that
differ are those near the seams (the boundaries between the frames kept from consecutive
chunks); per seam the worst |ΔPSNR| is printed, and one summary line per overlap. The default
`ftvsr.inference.CHUNK_OVERLAP` is the smallest overlap whose worst frame is within 0.05 dB
(`THRESHOLD_DB`).

Tiles: the same, one pass on whole frames against `--tiles` LR tile sizes (with the default
tile overlap), over all frames: the FTT normalises each DCT channel over the whole input frame,
so a tile's output differs from the same pixels of the whole frame beyond the blended overlaps.

Inputs: the sample pipeline's model and its carphone test clip (`dvc repro` makes both: BD x4
LR frames, RGB PSNR without border crop as in the evaluation).

Measured on a 2-core x86-64 CPU on carphone raw (60 frames, LR 44x36, BD x4), chunks of 20
frames, one run each. "sample": the sample configuration trained by the sample recipe, stopped
after 150 of its 500 iterations (24.17 dB in one pass); "random": the same configuration with
random weights and non-zero output heads (`zero_init_heads=False`, seed 0; 19.10 dB), whose
propagation carries strong, untrained features; "former": random, with `--unaligned` (chunk
starts and ends off the keyframe grid, as before). Worst |ΔPSNR| over all frames / lowest
PSNR of a chunked frame against the one-pass frame:

    overlap asked (shared)  frames run  sample             random             former (shared)
    0  (0)                  60          0.001 / 56.72 dB   0.067 / 40.07 dB   0.069 / 40.07 dB (0)
    2  (3)                  69          0.001 / 60.17 dB   0.007 / 42.97 dB   0.011 / 42.82 dB (2)
    4  (6)                  84          0.001 / 66.02 dB   0.005 / 48.01 dB   0.005 / 45.27 dB (4)
    6  (6)                  84          0.001 / 66.02 dB   0.005 / 48.01 dB
    8  (9)                  105         0.001 / 68.89 dB   0.003 / 50.27 dB
    12 (12)                 144         0.000 / 68.81 dB

With the fully trained sample model (`dvc repro`'s models/sample/ftvsr.pth, 24.51 dB in one pass;
`--overlaps 0 2 4 8 --tiles 24 32 40 --threads 1`): worst |ΔPSNR| / lowest PSNR against the one
pass 0.005 / 55.40 dB at overlap 0, 0.005 / 58.60 at 2, 0.005 / 58.38 at 4, 0.004 / 59.39 at 8;
tiles 24 / 32 / 40: mean ΔPSNR +0.088 / +0.043 / +0.011 dB, worst frame +0.104 / +0.051 / +0.014
dB, 44.87 / 50.88 / 56.25 dB against the untiled output (2.5 min in all, one thread).

On the sample models every overlap, a hard cut included, is within 0.05 dB; on random weights 2
is the smallest, hence `CHUNK_OVERLAP = 2`. Tiles, sample model, tile overlap 16 (mean / worst
frame ΔPSNR, mean PSNR against the untiled output): tile 24 (12 tiles a frame) +0.072 / +0.086
dB, 48.12 dB; tile 32 (4) +0.028 / +0.034 dB, 52.47 dB; tile 40 (2) +0.009 / +0.010 dB, 56.89 dB.

    python benchmarks/chunk_seams.py
    python benchmarks/chunk_seams.py --overlaps 0 2 4 --tiles 24 32 40
    python benchmarks/chunk_seams.py --weights random.pth --overlaps 0 2 4 --unaligned
"""

from __future__ import annotations

import argparse
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

import ftvsr.inference
from ftvsr.inference import TILE_OVERLAP, _kept_ranges, chunk_spans, super_resolve, windows
from ftvsr.io.frames import read_clip
from ftvsr.metrics import psnr
from ftvsr.models import load_model

ROOT = Path(__file__).resolve().parents[1]
THRESHOLD_DB = 0.05


def frame_psnrs(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return np.array([psnr(g, p) for g, p in zip(gt, pred, strict=True)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=ROOT / "models/sample/ftvsr.pth")
    parser.add_argument("--lr", type=Path, default=ROOT / "data/sample/lr/raw/test/carphone/carphone")
    parser.add_argument("--hr", type=Path, default=ROOT / "data/sample/hr/test/carphone/carphone")
    parser.add_argument("--chunk", type=int, default=20, help="frames per chunk")
    parser.add_argument("--overlaps", type=int, nargs="*", default=[0, 2, 4, 6, 8, 10, 12])
    parser.add_argument("--tiles", type=int, nargs="*", default=None, help="LR tile sizes (default: none)")
    parser.add_argument("--tile-overlap", type=int, default=TILE_OVERLAP, help="LR pixels (at most tile - 1)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--unaligned", action="store_true", help="chunks not aligned to the keyframe stride")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.unaligned:  # the former chunking: super_resolve looks chunk_spans up at each call
        ftvsr.inference.chunk_spans = lambda length, chunk, overlap, align=1: chunk_spans(length, chunk, overlap)

    model = load_model(args.weights)
    lr, hr = read_clip(args.lr), read_clip(args.hr)
    t = len(lr)
    begin = time.perf_counter()
    whole = super_resolve(model, lr)
    seconds = time.perf_counter() - begin
    whole_psnr = frame_psnrs(hr, whole)
    print(
        f"{args.lr}: {t} frames, LR {lr.shape[2]}x{lr.shape[1]}; one pass: {whole_psnr.mean():.2f} dB, {seconds:.1f} s"
    )

    if args.overlaps:
        print(f"\nchunks of {args.chunk} frames (keyframe stride {model.keyframe_stride}); ΔPSNR = chunked - one pass")
        print(
            "| overlap asked (min actual) | frames run | worst |ΔPSNR| dB | mean ΔPSNR dB | min PSNR vs one pass dB |"
        )
        print("| --- | --- | --- | --- | --- |")
    chosen = None
    for overlap in args.overlaps:
        spans = ftvsr.inference.chunk_spans(t, args.chunk, overlap, model.keyframe_stride)
        kept = _kept_ranges(spans)
        chunked = super_resolve(model, lr, chunk=args.chunk, chunk_overlap=overlap)
        delta = frame_psnrs(hr, chunked) - whole_psnr
        same = frame_psnrs(whole, chunked)  # inf where identical
        seams = [end for _, end in kept[:-1]]
        per_seam = []
        for seam in seams:  # the frames nearer this seam than any other
            others = [s for s in seams if s != seam]
            near = [i for i in range(t) if all(abs(i + 0.5 - seam) <= abs(i + 0.5 - s) for s in others)]
            worst = max(near, key=lambda i: abs(delta[i]))
            per_seam.append(f"{seam}: {delta[worst]:+.3f} (frame {worst})")
        actual = min((prev_end - start for (_, prev_end), (start, _) in pairwise(spans)), default=0)
        worst_db = float(np.abs(delta).max())
        print(
            f"| {overlap} ({actual}) | {sum(e - s for s, e in spans)} | {worst_db:.3f} | {delta.mean():+.4f} "
            f"| {same.min():.2f} |"
        )
        print("    worst per seam (seam frame: ΔPSNR): " + ", ".join(per_seam))
        if chosen is None and worst_db <= THRESHOLD_DB:
            chosen = overlap
    if args.overlaps:
        print(f"\nsmallest overlap with every frame within {THRESHOLD_DB} dB: {chosen}")

    if args.tiles:
        print(f"\ntiles (tile overlap {args.tile_overlap} LR pixels); ΔPSNR = tiled - one pass, over all frames")
        print("| LR tile | tiles per frame | mean ΔPSNR dB | worst frame ΔPSNR dB | PSNR vs one pass dB |")
        print("| --- | --- | --- | --- | --- |")
        for tile in args.tiles:
            overlap = min(args.tile_overlap, tile - 1)
            tiled = super_resolve(model, lr, tile=tile, tile_overlap=overlap)
            delta = frame_psnrs(hr, tiled) - whole_psnr
            same = frame_psnrs(whole, tiled)
            count = len(windows(lr.shape[1], tile, overlap)) * len(windows(lr.shape[2], tile, overlap))
            worst = delta[np.argmax(np.abs(delta))]
            print(f"| {tile} (overlap {overlap}) | {count} | {delta.mean():+.3f} | {worst:+.3f} | {same.mean():.2f} |")


if __name__ == "__main__":
    main()
