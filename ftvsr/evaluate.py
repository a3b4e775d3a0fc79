"""Score super-resolved clips against ground truth: per-frame tables, summaries, MLflow, comparisons.

A test set is two set folders of clip folders with the same clip and frame names: the LR input
(`LR/raw/<clip>/00000000.png`, or a compressed level `LR/crf25/...`) and the HR ground truth
(`HR/<clip>/00000000.png`). `evaluate_set` runs every clip through each method and returns one
row per (method, clip, frame).

Methods
- "bicubic": MATLAB's bicubic `imresize(lr, 4)` of each LR frame (the baseline);
- "ftvsr": the network on the whole clip at once (`ftvsr.inference.super_resolve`), so the
  recurrent propagation sees every evaluated frame, as in the published test.

Protocols
- "full": every frame of every clip, whole frames.
- "published": the published test (`tools/test.py` with `configs/FTVSR_reds4.py` /
  `configs/FTVSR_vimeo90k.py` of researchmm/FTVSR), reproduced:
  * each clip is split into 2x2 spatial crops that are evaluated as separate clips named
    `<clip>_<i>_<j>` (i: top/bottom half, j: left/right half; LR halves at `h // 2`, `w // 2`,
    GT halves at 4x those). The network sees only the crop, as it did in the published test,
    whose test folders held pre-cropped clips `000_0_0` ... `020_1_1`;
  * REDS4: `test_frames` (default 25, the published `--test_frames`) consecutive frames from
    `start_frame` (default 0: the published start index 1 counts frames from 1), scored in RGB;
  * Vid4: every frame of each crop, scored on the Y channel (published `convert_to='y'`);
  * no border crop (published `crop_border=0`).

How results are combined (both protocols, `summarize`): PSNR and SSIM are computed per frame
(on uint8 frames, `ftvsr.metrics`), averaged over the frames of each evaluated clip (a crop,
under "published"), then averaged over clips with equal weight. This is what the published code
does: the model's `evaluate` averages a clip's frames, the dataset's `evaluate` averages the
clips (REDS4: 16 crops of 25 frames; Vid4: 16 crops, each weighted equally whatever its
length). PSNR is averaged in dB (not computed from a pooled MSE).

Colour space: `convert_to_y=None` means "the dataset's published choice": Y for Vid4 (any
dataset name starting with "vid4"), RGB otherwise, under both protocols.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ftvsr.data.imresize import imresize
from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import atomic_path, write_text_atomic
from ftvsr.io.frames import list_clips, list_frames, read_frames, write_frame
from ftvsr.io.parallel import torch_threads
from ftvsr.metrics import frame_scores
from ftvsr.tracking import PARENT_RUN_TAG, STAGE_TAG, eval_run_name, flatten, resolve_tracking_uri

if TYPE_CHECKING:
    import torch

    from ftvsr.params import EvaluateSettings

SCALE = 4
METHODS = ("bicubic", "ftvsr")
PROTOCOLS = ("full", "published")
FRAME_COLUMNS = ["dataset", "crf", "protocol", "method", "clip", "sequence", "frame", "psnr", "ssim"]
SUMMARY_COLUMNS = ["dataset", "crf", "protocol", "method", "clip", "frames", "psnr", "ssim"]
GROUP_KEYS = ["dataset", "crf", "protocol", "method"]
COMPARISON_COLUMNS = ["model", "source", "dataset", "crf", "protocol", "psnr", "ssim", "delta_psnr", "delta_ssim"]
ALL_CLIPS = "__all__"  # the `clip` value of a summary's overall row
PUBLISHED_REDS_TEST_FRAMES = 25  # tools/test.py --test_frames default
# Columns read back from CSV as text: clip names such as "000" must not become numbers.
TEXT_COLUMNS = {"dataset": str, "crf": str, "protocol": str, "method": str, "clip": str, "sequence": str}


# --------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class Protocol:
    """How one dataset is scored: colour space, border crop, which frames, whether 2x2 crops."""

    name: str
    convert_to_y: bool
    crop_border: int
    start_frame: int
    test_frames: int | None  # None: every frame from start_frame on
    split_2x2: bool


def is_vid4(dataset: str) -> bool:
    return dataset.lower().startswith("vid4")


def is_reds(dataset: str) -> bool:
    return dataset.lower().startswith("reds")


def resolve_protocol(
    protocol: str,
    dataset: str,
    *,
    convert_to_y: bool | None = None,
    crop_border: int = 0,
    start_frame: int | None = None,
    test_frames: int | None = None,
) -> Protocol:
    """The concrete settings of `protocol` for `dataset`; explicit arguments override defaults."""
    if protocol not in PROTOCOLS:
        raise FTVSRError(f"unknown evaluation protocol {protocol!r} (use one of {', '.join(PROTOCOLS)})")
    if crop_border < 0:
        raise FTVSRError(f"crop_border must be >= 0, got {crop_border}")
    if start_frame is not None and start_frame < 0:
        raise FTVSRError(f"start_frame must be >= 0, got {start_frame}")
    if test_frames is not None and test_frames < 1:
        raise FTVSRError(f"test_frames must be >= 1, got {test_frames}")
    y = is_vid4(dataset) if convert_to_y is None else bool(convert_to_y)
    if protocol == "full":
        return Protocol("full", y, crop_border, start_frame or 0, test_frames, split_2x2=False)
    frames: int | None
    if is_reds(dataset):
        frames = PUBLISHED_REDS_TEST_FRAMES if test_frames is None else test_frames
    elif is_vid4(dataset):
        frames = test_frames
    else:
        raise FTVSRError(
            f"protocol 'published' is defined for REDS4 and Vid4 only, got dataset {dataset!r} (use protocol 'full')"
        )
    return Protocol("published", y, crop_border, start_frame or 0, frames, split_2x2=True)


# --------------------------------------------------------------------------- clip loading


def _paired_frames(lq_clip: Path, gt_clip: Path) -> tuple[list[Path], list[Path]]:
    """LR and GT frame paths of one clip, paired by file name; any mismatch raises."""
    if not gt_clip.is_dir():
        raise FTVSRError(f"ground truth clip folder missing: {gt_clip} (LR clip {lq_clip} has no GT)")
    lq_paths = list_frames(lq_clip)
    gt_paths = list_frames(gt_clip)
    lq_names = [p.name for p in lq_paths]
    gt_names = {p.name for p in gt_paths}
    missing = [n for n in lq_names if n not in gt_names]
    if missing:
        raise FTVSRError(
            f"GT frame missing: {gt_clip / missing[0]} ({len(missing)} of the {len(lq_names)} LR frames have no GT)"
        )
    extra = sorted(gt_names - set(lq_names))
    if extra:
        raise FTVSRError(f"GT frame without LR input: {gt_clip / extra[0]} ({len(extra)} GT frames have no LR frame)")
    by_name = {p.name: p for p in gt_paths}
    return lq_paths, [by_name[n] for n in lq_names]


def _select(n_frames: int, protocol: Protocol, clip_dir: Path) -> range:
    stop = n_frames if protocol.test_frames is None else protocol.start_frame + protocol.test_frames
    if protocol.start_frame >= n_frames or stop > n_frames:
        raise FTVSRError(
            f"clip {clip_dir} has {n_frames} frames; the protocol needs frames {protocol.start_frame}..{stop - 1}"
        )
    return range(protocol.start_frame, stop)


def _load_pair(
    lq_dir: Path, gt_dir: Path, clip: str, protocol: Protocol
) -> tuple[range, list[str], np.ndarray, np.ndarray]:
    """The protocol's frames of one clip: (frame positions, their names, LR (t, h, w, 3), GT (t, 4h, 4w, 3))."""
    lq_paths, gt_paths = _paired_frames(lq_dir / clip, gt_dir / clip)
    selected = _select(len(lq_paths), protocol, lq_dir / clip)
    lq = read_frames([lq_paths[k] for k in selected])
    gt = read_frames([gt_paths[k] for k in selected])
    expected = (lq.shape[1] * SCALE, lq.shape[2] * SCALE)
    if gt.shape[1:3] != expected:
        raise FTVSRError(
            f"GT frames of {gt_dir / clip} are {gt.shape[2]}x{gt.shape[1]}, expected {SCALE}x the LR size "
            f"{lq.shape[2]}x{lq.shape[1]} = {expected[1]}x{expected[0]}"
        )
    return selected, [lq_paths[k].name for k in selected], lq, gt


def _halves(n: int) -> list[tuple[int, int]]:
    return [(0, n // 2), (n // 2, n)]


def _pieces(clip: str, lq: np.ndarray, gt: np.ndarray, split_2x2: bool):
    """Yield (name, LR piece, GT piece, (i, j) or None): the whole clip, or its 2x2 crops."""
    if not split_2x2:
        yield clip, lq, gt, None
        return
    h, w = lq.shape[1:3]
    if h < 2 or w < 2:
        raise FTVSRError(f"clip {clip}: LR frames of {w}x{h} cannot be split into 2x2 crops")
    for i, (r0, r1) in enumerate(_halves(h)):
        for j, (c0, c1) in enumerate(_halves(w)):
            yield (
                f"{clip}_{i}_{j}",
                np.ascontiguousarray(lq[:, r0:r1, c0:c1]),
                np.ascontiguousarray(gt[:, SCALE * r0 : SCALE * r1, SCALE * c0 : SCALE * c1]),
                (i, j),
            )


def _stitch(parts: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
    """Reassemble 2x2 crops (h, w, 3) keyed by (i, j) into one frame."""
    rows = [np.concatenate([parts[(i, 0)], parts[(i, 1)]], axis=1) for i in (0, 1)]
    return np.concatenate(rows, axis=0)


def bicubic_upsample(lq: np.ndarray) -> np.ndarray:
    """The baseline: MATLAB bicubic x4 of each uint8 (h, w, 3) frame of (t, h, w, 3) -> (t, 4h, 4w, 3)."""
    return np.stack([imresize(frame, SCALE) for frame in lq])


# --------------------------------------------------------------------------- evaluation


def evaluate_set(
    lq_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    *,
    model: torch.nn.Module | None = None,
    methods: Sequence[str] = METHODS,
    dataset: str,
    crf: str,
    protocol: str = "full",
    convert_to_y: bool | None = None,
    crop_border: int = 0,
    start_frame: int | None = None,
    test_frames: int | None = None,
    chunk: int | None = None,
    tile: int | None = None,
    device: str | torch.device = "cpu",
    amp_dtype: torch.dtype | None = None,
    save_frames_dir: str | os.PathLike | None = None,
    save_frame_index: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Score every clip of `lq_dir` against `gt_dir`; one row per (method, clip, frame).

    Columns: dataset, crf, protocol, method, clip (the evaluated clip: the clip folder, or one of
    its 2x2 crops `<clip>_<i>_<j>` under "published"), sequence (the clip folder), frame (0-based
    position of the frame in its clip folder), psnr (dB), ssim.

    `model` (needed for "ftvsr") is an `ftvsr.models.FTVSR` or any module mapping float
    (n, t, 3, h, w) in [0, 1] to (n, t, 3, 4h, 4w); `chunk`, `tile`, `device`, `amp_dtype` are
    passed to `super_resolve`. `convert_to_y=None`: Y for Vid4, RGB otherwise; `start_frame`,
    `test_frames`: which frames (defaults per protocol, see the module docstring).

    `save_frames_dir`: for each clip folder, the frame at position `save_frame_index` among the
    evaluated frames (default: the middle one) is saved as `<save_frames_dir>/<clip>/lr.png`,
    `bicubic.png`, `ftvsr.png`, `gt.png` (whole frames; crops are stitched back) with `info.json`
    (dataset, crf, protocol, clip, frame): the report's visual strips read them.

    Raises FTVSRError for: an empty or missing set/clip folder, a clip without its GT folder, LR
    and GT frame names that differ (a missing GT frame), GT frames that are not 4x the LR size, a
    prediction whose size or frame count differs from the GT, too few frames for the protocol.
    """
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise FTVSRError(f"unknown evaluation methods {unknown or list(methods)} (use any of {', '.join(METHODS)})")
    if "ftvsr" in methods and model is None:
        raise FTVSRError("method 'ftvsr' needs a model (pass model=FTVSR.from_checkpoint(path))")
    proto = resolve_protocol(
        protocol,
        dataset,
        convert_to_y=convert_to_y,
        crop_border=crop_border,
        start_frame=start_frame,
        test_frames=test_frames,
    )
    lq_dir, gt_dir = Path(lq_dir), Path(gt_dir)
    if not gt_dir.is_dir():
        raise FTVSRError(f"ground truth set folder not found: {gt_dir}")
    clips = list_clips(lq_dir)

    rows: list[tuple] = []
    for clip in tqdm(clips, desc=f"evaluate {dataset} {crf}", unit="clip", disable=not progress):
        selected, names, lq, gt = _load_pair(lq_dir, gt_dir, clip, proto)
        keep = None
        if save_frames_dir is not None:
            # a display choice, so a clip shorter than the asked index shows its last frame
            keep = len(selected) // 2 if save_frame_index is None else min(save_frame_index, len(selected) - 1)
            if keep < 0:
                raise FTVSRError(f"save_frame_index must be >= 0, got {save_frame_index}")
        kept: dict[str, dict] = {m: {} for m in methods}  # method -> crop position -> the kept frame
        for piece, lq_piece, gt_piece, where in _pieces(clip, lq, gt, proto.split_2x2):
            for method in methods:
                pred = _predict(method, lq_piece, model, chunk=chunk, tile=tile, device=device, amp_dtype=amp_dtype)
                if pred.shape != gt_piece.shape:
                    raise FTVSRError(
                        f"{method} output for {piece} has shape {pred.shape} (t, h, w, c) but its GT {gt_dir / clip} "
                        f"has {gt_piece.shape}"
                    )
                scores = frame_scores(gt_piece, pred, proto.crop_border, proto.convert_to_y)
                for k, score in zip(selected, scores, strict=True):
                    rows.append((dataset, crf, proto.name, method, piece, clip, k, *score))
                if keep is not None:
                    kept[method][where] = pred[keep]
        if keep is not None and save_frames_dir is not None:  # keep is set only with save_frames_dir
            _save_strip_frames(
                Path(save_frames_dir) / clip,
                lq=lq[keep],
                gt=gt[keep],
                preds={m: (parts[None] if None in parts else _stitch(parts)) for m, parts in kept.items()},
                info={
                    "dataset": dataset,
                    "crf": crf,
                    "protocol": proto.name,
                    "clip": clip,
                    "frame": int(selected[keep]),
                    "frame_name": names[keep],
                },
            )
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)


def _predict(method: str, lq: np.ndarray, model, **inference) -> np.ndarray:
    if method == "bicubic":
        return bicubic_upsample(lq)
    from ftvsr.inference import super_resolve  # imports torch; bicubic-only use does not need it

    return super_resolve(model, lq, progress=False, **inference)


def _save_strip_frames(
    folder: Path, *, lq: np.ndarray, gt: np.ndarray, preds: Mapping[str, np.ndarray], info: dict
) -> None:
    write_frame(folder / "lr.png", lq)
    write_frame(folder / "gt.png", gt)
    for method, img in preds.items():
        write_frame(folder / f"{method}.png", img)
    write_text_atomic(folder / "info.json", json.dumps(info, indent=2) + "\n")


# --------------------------------------------------------------------------- summaries and files


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


def _metrics_block(rows: pd.DataFrame) -> dict[str, Any]:
    """{method: {psnr, ssim}} for one (dataset, crf, protocol), plus deltas of ftvsr vs bicubic."""
    block: dict[str, Any] = {}
    for row in rows.itertuples():
        block[row.method] = {"psnr": float(row.psnr), "ssim": float(row.ssim)}
    if "ftvsr" in block and "bicubic" in block:
        block["delta_psnr"] = block["ftvsr"]["psnr"] - block["bicubic"]["psnr"]
        block["delta_ssim"] = block["ftvsr"]["ssim"] - block["bicubic"]["ssim"]
    return block


def metrics_dict(frames_df: pd.DataFrame) -> dict[str, Any]:
    """The content of `metrics.json`.

    One evaluation (a single dataset, CRF and protocol): flat,
    `{"ftvsr": {"psnr", "ssim"}, "bicubic": {...}, "delta_psnr", "delta_ssim"}`. Several: the same
    block under a key `"<dataset>/<crf>"` (plus `"/<protocol>"` when protocols differ).
    """
    overall = overall_means(frames_df)
    groups = list(overall.groupby(["dataset", "crf", "protocol"], sort=False))
    if len(groups) == 1:
        return _metrics_block(groups[0][1])
    several_protocols = overall["protocol"].nunique() > 1
    out: dict[str, Any] = {}
    for (dataset, crf, protocol), rows in groups:
        key = f"{dataset}/{crf}" + (f"/{protocol}" if several_protocols else "")
        out[key] = _metrics_block(rows)
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


def evaluate_level(
    lq_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    model: torch.nn.Module,
    dataset: str,
    crf: str,
    settings: EvaluateSettings,
    protocol: str | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> pd.DataFrame:
    """`evaluate_set` with a profile's evaluation settings (frames, precision, threads), results and
    strip frames written to `out_dir`; `device` as given (the caller resolves `settings.device`)."""
    out_dir = Path(out_dir)
    with torch_threads(settings.threads):
        frames = evaluate_set(
            lq_dir,
            gt_dir,
            model=model,
            dataset=dataset,
            crf=crf,
            protocol=protocol or settings.protocol,
            convert_to_y=dataset in settings.y_channel_datasets,
            crop_border=settings.crop_border,
            test_frames=settings.test_frames,
            chunk=settings.chunk,
            tile=settings.tile,
            device=device,
            amp_dtype=torch.bfloat16 if settings.precision == "bf16" else None,
            save_frames_dir=out_dir / "strips",
            save_frame_index=settings.strip_frame,
            progress=progress,
        )
    write_results(frames, out_dir)
    return frames


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


# --------------------------------------------------------------------------- MLflow


def _client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))


def _experiment_id(client, experiment: str, artifact_location: str | None) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(experiment, artifact_location=artifact_location)


def _eval_metrics(block: Mapping[str, Any]) -> dict[str, float]:
    """Metric names of an evaluation run: `<method>_psnr`, `<method>_ssim`, `delta_psnr`, `delta_ssim`."""
    metrics: dict[str, float] = {}
    for key, value in block.items():
        if isinstance(value, Mapping):
            for name, number in value.items():
                metrics[f"{key}_{name}"] = float(number)
        else:
            metrics[key] = float(value)
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


def log_evaluation_mlflow(
    results_by_key: Mapping[tuple[str, str], pd.DataFrame],
    *,
    tracking_uri: str,
    experiment: str,
    sweep_name: str,
    model_run_id: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    artifact_location: str | None = None,
) -> str:
    """Log an evaluation sweep to MLflow; returns the parent run's id.

    One parent run named `sweep_name` (with `params`, flattened as `a.b`), and one child run per
    (dataset, crf) key named `eval-<dataset>-<crf>` (`ftvsr.tracking` conventions) holding that
    evaluation's means as metrics
    `bicubic_psnr`, `bicubic_ssim`, `ftvsr_psnr`, `ftvsr_ssim`, `delta_psnr`, `delta_ssim`, the
    params dataset / crf / protocol and the tags dataset, crf, protocol, sweep and, when given,
    `model_run_id` (the training run of the evaluated model). Selecting the children in MLflow's
    compare view shows the CRF ablation side by side. The parent also carries every child's
    metrics as `<dataset>.<crf>.<metric>`. `tags` (e.g. `ftvsr.tracking.run_tags("evaluate", ...)`:
    code and data versions) go on every run; all runs are tagged `stage=evaluate`.

    The values are DataFrames of per-frame results (`evaluate_set`) or summaries (`summarize`).
    """
    if not results_by_key:
        raise FTVSRError("nothing to log: no evaluation results given")
    from mlflow.entities import Metric, Param

    blocks: dict[tuple[str, str], tuple[str, dict[str, float]]] = {}
    for (dataset, crf), df in results_by_key.items():  # validate everything before creating runs
        overall = overall_means(df)
        if overall[["dataset", "crf", "protocol"]].drop_duplicates().shape[0] != 1:
            raise FTVSRError(
                f"results for ({dataset}, {crf}) mix several datasets, CRFs or protocols: log one evaluation per key"
            )
        blocks[(dataset, crf)] = (str(overall["protocol"].iloc[0]), _eval_metrics(_metrics_block(overall)))

    client = _client(tracking_uri)
    experiment_id = _experiment_id(client, experiment, artifact_location)
    base_tags = {
        **{k: str(v) for k, v in (tags or {}).items()},
        STAGE_TAG: "evaluate",
        "sweep": sweep_name,
        **({"model_run_id": model_run_id} if model_run_id else {}),
    }
    parent = client.create_run(experiment_id, run_name=sweep_name, tags={**base_tags, "kind": "evaluation-sweep"})
    parent_id = parent.info.run_id
    status = "FAILED"
    try:
        if params:
            client.log_batch(parent_id, params=[Param(k, v) for k, v in flatten(params).items()])
        parent_metrics: list[Metric] = []
        for (dataset, crf), (protocol, metrics) in blocks.items():
            tags = {
                **base_tags,
                "dataset": dataset,
                "crf": crf,
                "protocol": protocol,
                "kind": "evaluation",
                PARENT_RUN_TAG: parent_id,
            }
            child = client.create_run(experiment_id, run_name=eval_run_name(dataset, crf), tags=tags)
            stamp = child.info.start_time
            client.log_batch(
                child.info.run_id,
                metrics=[Metric(k, v, stamp, 0) for k, v in metrics.items()],
                params=[Param("dataset", dataset), Param("crf", crf), Param("protocol", protocol)],
            )
            client.set_terminated(child.info.run_id, "FINISHED")
            parent_metrics += [Metric(f"{dataset}.{crf}.{k}", v, stamp, 0) for k, v in metrics.items()]
        if parent_metrics:
            client.log_batch(parent_id, metrics=parent_metrics)
        status = "FINISHED"
    finally:
        client.set_terminated(parent_id, status)
    return parent_id


# --------------------------------------------------------------------------- comparing models


@dataclass(frozen=True)
class EvalSet:
    """One test set at one compression level: where its LR input and GT frames are."""

    dataset: str
    crf: str
    lq_dir: Path
    gt_dir: Path


def _runs_of(client, run_id: str) -> list:
    """The evaluation runs behind `run_id`: a sweep's children, the run itself, or the runs tagged with it."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise FTVSRError(f"no MLflow run with id {run_id!r} in the tracking store") from None
    experiments = [e.experiment_id for e in client.search_experiments()]
    children = client.search_runs(experiments, filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    if children:
        return list(children)
    if "dataset" in run.data.tags and "crf" in run.data.tags:
        return [run]
    tagged = client.search_runs(
        experiments,
        filter_string=f"tags.model_run_id = '{run_id}' and tags.kind = 'evaluation'",
        order_by=["attributes.start_time DESC"],
    )
    latest: dict[tuple[str, str], Any] = {}
    for candidate in tagged:  # newest first: keep the latest evaluation of each (dataset, crf)
        latest.setdefault((candidate.data.tags["dataset"], candidate.data.tags["crf"]), candidate)
    if not latest:
        raise FTVSRError(f"MLflow run {run_id} holds no evaluation metrics and no evaluation refers to it")
    return list(latest.values())


def _rows_from_mlflow(client, run_id: str, label: str) -> list[dict]:
    rows = []
    for run in _runs_of(client, run_id):
        m, tags = run.data.metrics, run.data.tags
        rows.append(
            {
                "model": label,
                "source": f"mlflow:{run_id}",
                "dataset": tags.get("dataset", ""),
                "crf": tags.get("crf", ""),
                "protocol": tags.get("protocol", ""),
                "psnr": m.get("ftvsr_psnr", math.nan),
                "ssim": m.get("ftvsr_ssim", math.nan),
                "delta_psnr": m.get("delta_psnr", math.nan),
                "delta_ssim": m.get("delta_ssim", math.nan),
            }
        )
    return rows


def compare_models(
    entries: Iterable[str | os.PathLike],
    sets: Sequence[EvalSet] = (),
    *,
    labels: Sequence[str] | None = None,
    tracking_uri: str | None = None,
    protocol: str = "full",
    convert_to_y: bool | None = None,
    crop_border: int = 0,
    chunk: int | None = None,
    tile: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> pd.DataFrame:
    """A table of several models on the same evaluation, for ablations (`ftvsr compare`).

    Each entry is either the path of one of our checkpoints (`FTVSR.from_checkpoint`), evaluated
    here on every set of `sets`, or an MLflow run id (needs `tracking_uri`) whose logged
    evaluation metrics are read: an evaluation sweep (its child runs), one evaluation run, or a
    training run (the latest evaluation runs tagged `model_run_id` = it). Bicubic on each set is
    computed once for the deltas of checkpoint entries.

    Returns one row per (model, dataset, crf): model, source, dataset, crf, protocol, psnr, ssim,
    delta_psnr, delta_ssim (FTVSR minus bicubic).
    """
    names = [str(e) for e in entries]
    if not names:
        raise FTVSRError("compare: no models given")
    labels = list(labels) if labels is not None else [Path(e).stem if Path(e).is_file() else e for e in names]
    if len(labels) != len(names):
        raise FTVSRError(f"compare: {len(names)} models but {len(labels)} labels")
    settings: dict[str, Any] = dict(
        protocol=protocol, convert_to_y=convert_to_y, crop_border=crop_border, progress=progress
    )
    bicubic_cache: dict[tuple[str, str], pd.Series] = {}
    rows: list[dict] = []
    client = None
    for entry, label in zip(names, labels, strict=True):
        if Path(entry).is_file():
            if not sets:
                raise FTVSRError(f"compare: checkpoint {entry} needs evaluation sets to run on")
            from ftvsr.models import FTVSR

            model = FTVSR.from_checkpoint(entry).eval()
            for s in sets:
                key = (s.dataset, s.crf)
                if key not in bicubic_cache:
                    base = evaluate_set(
                        s.lq_dir, s.gt_dir, methods=("bicubic",), dataset=s.dataset, crf=s.crf, **settings
                    )
                    bicubic_cache[key] = overall_means(base).iloc[0]
                ours = overall_means(
                    evaluate_set(
                        s.lq_dir,
                        s.gt_dir,
                        model=model,
                        methods=("ftvsr",),
                        dataset=s.dataset,
                        crf=s.crf,
                        chunk=chunk,
                        tile=tile,
                        device=device,
                        **settings,
                    )
                ).iloc[0]
                base = bicubic_cache[key]
                rows.append(
                    {
                        "model": label,
                        "source": entry,
                        "dataset": s.dataset,
                        "crf": s.crf,
                        "protocol": ours["protocol"],
                        "psnr": ours["psnr"],
                        "ssim": ours["ssim"],
                        "delta_psnr": ours["psnr"] - base["psnr"],
                        "delta_ssim": ours["ssim"] - base["ssim"],
                    }
                )
        elif tracking_uri is not None:
            client = client or _client(tracking_uri)
            rows += _rows_from_mlflow(client, entry, label)
        else:
            raise FTVSRError(
                f"compare: {entry} is not a checkpoint file (and no MLflow tracking URI was given "
                "to look it up as a run id)"
            )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def format_comparison(table: pd.DataFrame) -> str:
    """Markdown of a `compare_models` table: one row per model, one column per (dataset, crf), PSNR/SSIM (Δ PSNR)."""
    if table.empty:
        return "(no results)\n"
    columns = list(dict.fromkeys(zip(table["dataset"], table["crf"], strict=True)))
    header = "| model | " + " | ".join(f"{d} {c}" for d, c in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for model, rows in table.groupby("model", sort=False):
        cells = []
        for d, c in columns:
            hit = rows[(rows["dataset"] == d) & (rows["crf"] == c)]
            if hit.empty:
                cells.append("–")
                continue
            r = hit.iloc[0]
            cell = f"{r['psnr']:.2f}/{r['ssim']:.4f}"
            if math.isfinite(r["delta_psnr"]):
                cell += f" ({r['delta_psnr']:+.2f})"
            cells.append(cell)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
