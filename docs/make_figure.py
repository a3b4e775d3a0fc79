"""The README's results figure, docs/images/results.png, from the committed sample report.

    python docs/make_figure.py                      # after `make repro` (or on the committed report)
    python docs/make_figure.py --report reports/sample --out docs/images/results.png

Left: the carphone crops of the visual strips `strips/strip_raw.png` and `strips/strip_crf35.png`
(LR shown nearest-neighbour x4, bicubic, Lanczos, FTVSR, ground truth), one row per compression
level. Right: PSNR against the CRF of the LR input from `psnr_vs_crf.csv`. Every label is drawn
outside the images.

The strips are cut back into their tiles with the boxes `ftvsr.report.make_strip` records in the
PNG (`tile_boxes`); a strip without them is refused rather than cut by guesswork.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATASET = "carphone"  # the test clip: the first row of each strip
COLUMN_TITLES = ("LR input\n(nearest x4)", "Bicubic", "Lanczos", "FTVSR (ours)", "Ground truth")
COLUMNS = len(COLUMN_TITLES)
SCORED = {1: "bicubic", 2: "lanczos", 3: "ftvsr"}  # tile column -> method whose PSNR goes under it
ROWS = (("raw", "uncompressed\nLR input"), ("crf35", "H.264 CRF 35\nLR input"))
LEVELS = ("raw", "crf15", "crf25", "crf35")
LEVEL_TITLES = {"raw": "Raw", "crf15": "CRF 15", "crf25": "CRF 25", "crf35": "CRF 35"}
METHODS = (("bicubic", "Bicubic", "#1f77b4"), ("lanczos", "Lanczos", "#2ca02c"), ("ftvsr", "FTVSR (ours)", "#d62728"))


def strip_tiles(path: Path, row: int = 0) -> list[np.ndarray]:
    """The tiles of one row of a strip written by `ftvsr.report.make_strip`, left to right."""
    with Image.open(path) as opened:
        boxes = opened.info.get("tile_boxes")
        image = np.asarray(opened.convert("RGB"))
    if boxes is None:
        raise SystemExit(f"{path}: no tile_boxes recorded; re-run the report stage")
    tiles = sorted((c, box) for r, c, *box in json.loads(boxes) if r == row)
    if len(tiles) != COLUMNS:
        raise SystemExit(f"{path}: row {row} has {len(tiles)} tiles, not {COLUMNS}")
    return [image[top:bottom, left:right] for _c, (left, top, right, bottom) in tiles]


def read_psnr(path: Path) -> dict[str, dict[str, float]]:
    """{method: {level: PSNR}} for `DATASET` in `psnr_vs_crf.csv`."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"{path} is empty")
    table: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["dataset"] == DATASET:
            table.setdefault(row["method"], {})[row["crf"]] = float(row["psnr"])
    return table


def make_figure(report: Path, out: Path, profile: Path) -> Path:
    strip_frame = yaml.safe_load(profile.read_text())["evaluate"]["strip_frame"]
    psnr = read_psnr(report / "psnr_vs_crf.csv")
    tiles = {level: strip_tiles(report / "strips" / f"strip_{level}.png") for level, _ in ROWS}

    fig = plt.figure(figsize=(12.0, 4.3), dpi=100)
    grid = fig.add_gridspec(len(ROWS), COLUMNS, left=0.08, right=0.62, top=0.86, bottom=0.16, wspace=0.06, hspace=0.2)
    for r, (level, row_title) in enumerate(ROWS):
        for c in range(COLUMNS):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(tiles[level][c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(COLUMN_TITLES[c], fontsize=9.5)
            if c == 0:
                ax.set_ylabel(row_title, fontsize=9.5)
            if c in SCORED:  # the clip's mean PSNR under the method's tile
                ax.set_xlabel(f"{psnr[SCORED[c]][level]:.2f} dB", fontsize=9, labelpad=2)
    fig.text(
        0.09,
        0.035,
        f"carphone (QCIF), BD x4, frame {strip_frame}, centre 128 x 128 crop; under the tiles: PSNR of the whole clip",
        fontsize=8.5,
        color="0.3",
    )

    ax = fig.add_axes((0.685, 0.16, 0.3, 0.70))
    x = np.arange(len(LEVELS))
    for method, name, color in METHODS:
        values = [psnr[method][level] for level in LEVELS]
        ax.plot(x, values, marker="o", color=color, label=name)
    for i, level in enumerate(LEVELS):
        low, high = psnr["bicubic"][level], psnr["ftvsr"][level]
        ax.annotate(
            f"+{high - low:.2f}",
            (i, high),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8.5,
            color=METHODS[-1][2],
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"},
        )
    ax.set_xticks(x, [LEVEL_TITLES[level] for level in LEVELS])
    ax.set_xlabel("compression of the LR input (H.264)", fontsize=9.5)
    ax.set_ylabel("PSNR (dB), carphone, RGB", fontsize=9.5)
    ax.set_title("PSNR vs CRF (+dB over bicubic)", fontsize=9.5)
    ax.margins(x=0.1, y=0.1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="lower left")
    ax.tick_params(labelsize=9)

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=ROOT / "reports" / "sample", help="the sample report folder")
    parser.add_argument("--profile", type=Path, default=ROOT / "profiles" / "sample.yaml", help="for strip_frame")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "results.png")
    args = parser.parse_args()
    path = make_figure(args.report, args.out, args.profile)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
