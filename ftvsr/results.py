"""Evaluation results: per-frame tables, their means, and the files they live in.

An evaluation (`ftvsr.evaluate.evaluate_set`) gives one row per (method, clip, frame). How they
are combined (`summarize`, the one implementation of the dataset means that reports, metrics
files and MLflow all use): PSNR and SSIM are computed per frame (on uint8 frames,
`ftvsr.metrics`), averaged over the frames of each evaluated clip (a crop, under the "published"
protocol), then averaged over clips with equal weight. This is what the published code does: the
model's `evaluate` averages a clip's frames, the dataset's `evaluate` averages the clips (REDS4:
16 crops of 25 frames; Vid4: 16 crops, each weighted equally whatever its length). PSNR is
averaged in dB (not computed from a pooled MSE).

Compression levels are labelled "raw" (the uncompressed LR) and "crf<N>" (`level_label`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import atomic_path, write_text_atomic

FRAME_COLUMNS = ["dataset", "crf", "protocol", "method", "clip", "sequence", "frame", "psnr", "ssim"]
SUMMARY_COLUMNS = ["dataset", "crf", "protocol", "method", "clip", "frames", "psnr", "ssim"]
GROUP_KEYS = ["dataset", "crf", "protocol", "method"]
ALL_CLIPS = "__all__"  # the `clip` value of a summary's overall row
# Columns read back from CSV as text: clip names such as "000" must not become numbers.
TEXT_COLUMNS = {"dataset": str, "crf": str, "protocol": str, "method": str, "clip": str, "sequence": str}
# The baselines FTVSR is measured against, each with the suffix of its delta names. Bicubic's keep
# the first names (`delta_psnr`, `delta_ssim`), so `dvc exp show` and MLflow histories continue.
BASELINE_SUFFIXES = {"bicubic": "", "lanczos": "_lanczos"}


def delta_names(baseline: str) -> tuple[str, str]:
    """The metric names of FTVSR minus `baseline`: ("delta_psnr", "delta_ssim") for bicubic,
    ("delta_psnr_lanczos", "delta_ssim_lanczos") for Lanczos."""
    suffix = BASELINE_SUFFIXES[baseline]
    return f"delta_psnr{suffix}", f"delta_ssim{suffix}"


# --------------------------------------------------------------------------- level names


def level_label(crf: str | int) -> str:
    """Canonical level label: "raw" for uncompressed input, "crf<N>" for H.264 CRF N."""
    text = str(crf).strip().lower()
    if text in ("raw", "uncompressed", "none", "-1"):
        return "raw"
    digits = text[3:] if text.startswith("crf") else text
    return f"crf{int(digits)}" if digits.isdigit() else text


def level_sort_key(crf: str) -> tuple[int, float, str]:
    label = level_label(crf)
    if label == "raw":
        return (0, 0.0, label)
    if label.startswith("crf") and label[3:].isdigit():
        return (1, float(label[3:]), label)
    return (2, 0.0, label)


def level_title(crf: str) -> str:
    label = level_label(crf)
    return "Raw" if label == "raw" else (f"CRF {label[3:]}" if label.startswith("crf") else label)


# --------------------------------------------------------------------------- means


def _check_frames_df(frames_df: pd.DataFrame) -> None:
    if not isinstance(frames_df, pd.DataFrame):
        raise FTVSRError(f"expected a pandas DataFrame of per-frame results, got {type(frames_df).__name__}")
    missing = [c for c in [*GROUP_KEYS, "clip", "frame", "psnr", "ssim"] if c not in frames_df]
    if missing:
        raise FTVSRError(f"per-frame results lack the columns {missing}")
    if frames_df.empty:
        raise FTVSRError("per-frame results are empty: no frame was evaluated")


def summarize(frames_df: pd.DataFrame) -> pd.DataFrame:
    """Per-clip means and the overall mean of each (dataset, crf, protocol, method).

    Per clip: mean over its frames. Overall (`clip == "__all__"`): mean of the clip means, each
    clip weighted equally (the published code's averaging). `frames` counts the frames behind
    each row. Columns: dataset, crf, protocol, method, clip, frames, psnr, ssim.
    """
    _check_frames_df(frames_df)
    per_clip = (
        frames_df.groupby([*GROUP_KEYS, "clip"], sort=False)
        .agg(frames=("frame", "size"), psnr=("psnr", "mean"), ssim=("ssim", "mean"))
        .reset_index()
    )
    overall = (
        per_clip.groupby(GROUP_KEYS, sort=False)
        .agg(frames=("frames", "sum"), psnr=("psnr", "mean"), ssim=("ssim", "mean"))
        .reset_index()
    )
    overall["clip"] = ALL_CLIPS
    return pd.concat([per_clip, overall], ignore_index=True)[SUMMARY_COLUMNS]


def overall_means(results: pd.DataFrame) -> pd.DataFrame:
    """The overall rows (dataset, crf, protocol, method, frames, psnr, ssim) of per-frame results or a summary."""
    summary = summarize(results) if "frame" in results else results
    if "clip" not in summary:
        raise FTVSRError("results have neither a 'frame' nor a 'clip' column")
    overall = summary[summary["clip"] == ALL_CLIPS].drop(columns="clip")
    if overall.empty:
        raise FTVSRError("results hold no overall rows (clip == '__all__')")
    return overall.reset_index(drop=True)


def level_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """{method: {psnr, ssim}} for one (dataset, crf, protocol), plus FTVSR minus each baseline that
    was evaluated: `delta_psnr`, `delta_ssim` (bicubic), `delta_psnr_lanczos`, `delta_ssim_lanczos`."""
    block: dict[str, Any] = {}
    for row in rows.itertuples():
        block[row.method] = {"psnr": float(row.psnr), "ssim": float(row.ssim)}
    for baseline in BASELINE_SUFFIXES:
        if "ftvsr" in block and baseline in block:
            psnr_name, ssim_name = delta_names(baseline)
            block[psnr_name] = block["ftvsr"]["psnr"] - block[baseline]["psnr"]
            block[ssim_name] = block["ftvsr"]["ssim"] - block[baseline]["ssim"]
    return block


def metrics_dict(frames_df: pd.DataFrame) -> dict[str, Any]:
    """The content of `metrics.json`.

    One evaluation (a single dataset, CRF and protocol): flat, `{"bicubic": {"psnr", "ssim"},
    "lanczos": {...}, "ftvsr": {...}, "delta_psnr", "delta_ssim", "delta_psnr_lanczos",
    "delta_ssim_lanczos"}` (`level_summary`). Several: the same
    block under a key `"<dataset>/<crf>"` (plus `"/<protocol>"` when protocols differ).
    """
    overall = overall_means(frames_df)
    groups = list(overall.groupby(["dataset", "crf", "protocol"], sort=False))
    if len(groups) == 1:
        return level_summary(groups[0][1])
    several_protocols = overall["protocol"].nunique() > 1
    out: dict[str, Any] = {}
    for (dataset, crf, protocol), rows in groups:
        key = f"{dataset}/{crf}" + (f"/{protocol}" if several_protocols else "")
        out[key] = level_summary(rows)
    return out


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f")


def write_results(frames_df: pd.DataFrame, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write `frames.csv`, `clips.csv` (the summary) and `metrics.json` (DVC metrics) into `out_dir`.

    Each file is written atomically. Returns the paths by name.
    """
    _check_frames_df(frames_df)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"frames": out_dir / "frames.csv", "clips": out_dir / "clips.csv", "metrics": out_dir / "metrics.json"}
    _write_csv(frames_df, paths["frames"])
    _write_csv(summarize(frames_df), paths["clips"])
    write_text_atomic(paths["metrics"], json.dumps(metrics_dict(frames_df), indent=2) + "\n")
    return paths


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Per-frame results from a results folder (its `frames.csv`) or a CSV file written by `write_results`."""
    path = Path(path)
    csv = path / "frames.csv" if path.is_dir() else path
    if not csv.is_file():
        raise FTVSRError(f"no per-frame results at {csv} (expected the frames.csv of an evaluation)")
    try:
        df = pd.read_csv(csv, dtype=TEXT_COLUMNS, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise FTVSRError(f"unreadable results file {csv}: {exc}") from None
    _check_frames_df(df)
    return df
