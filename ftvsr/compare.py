"""Several models on the same evaluation, side by side (`ftvsr compare`): ablations.

A model is either one of our checkpoints, evaluated here, or an MLflow training run whose
evaluations (`ftvsr.tracking.log_evaluation`) are read back from the tracking store.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ftvsr import tracking
from ftvsr.errors import FTVSRError
from ftvsr.evaluate import evaluate_set
from ftvsr.results import BASELINE_SUFFIXES, delta_names, overall_means

if TYPE_CHECKING:
    import torch

    from ftvsr.params import MlflowSettings

BASELINES = tuple(BASELINE_SUFFIXES)  # bicubic, lanczos
BASELINE_TITLES = {"bicubic": "bicubic", "lanczos": "Lanczos"}
DELTA_COLUMNS = [name for baseline in BASELINES for name in delta_names(baseline)]
COMPARISON_COLUMNS = ["model", "source", "dataset", "crf", "protocol", "psnr", "ssim", *DELTA_COLUMNS]


@dataclass(frozen=True)
class EvalSet:
    """One test set at one compression level: where its LR input and GT frames are."""

    dataset: str
    crf: str
    lq_dir: Path
    gt_dir: Path


def _evaluation_runs(client: Any, run_id: str) -> list:
    """The evaluation runs behind `run_id`: a training run's nested evaluations, or the run itself."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise FTVSRError(f"no MLflow run with id {run_id!r} in the tracking store") from None
    if run.data.tags.get(tracking.STAGE_TAG) == "evaluate":
        return [run]
    children = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.{tracking.PARENT_RUN_TAG} = '{run_id}' and tags.{tracking.STAGE_TAG} = 'evaluate'",
    )
    if not children:
        raise FTVSRError(f"MLflow run {run_id} has no evaluation runs (run the evaluate stages on its model)")
    return sorted(children, key=lambda r: (r.data.tags.get("dataset", ""), r.data.tags.get("level", "")))


def _rows_from_mlflow(client: Any, run_id: str, label: str) -> list[dict]:
    rows = []
    for run in _evaluation_runs(client, run_id):
        metrics, tags = run.data.metrics, run.data.tags
        rows.append(
            {
                "model": label,
                "source": f"mlflow:{run_id}",
                "dataset": tags.get("dataset", ""),
                "crf": tags.get("level", ""),
                "protocol": tags.get("protocol", ""),
                "psnr": metrics.get("ftvsr_psnr", math.nan),
                "ssim": metrics.get("ftvsr_ssim", math.nan),
                # runs logged before Lanczos was evaluated lack its deltas: NaN
                **{name: metrics.get(name, math.nan) for name in DELTA_COLUMNS},
            }
        )
    return rows


def compare_models(
    entries: Iterable[str | os.PathLike],
    sets: Sequence[EvalSet] = (),
    *,
    labels: Sequence[str] | None = None,
    mlflow: MlflowSettings | None = None,
    protocol: str = "full",
    convert_to_y: bool | None = None,
    crop_border: int = 0,
    test_frames: int | None = None,
    chunk: int | None = None,
    chunk_overlap: int | None = None,
    tile: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> pd.DataFrame:
    """A table of several models on the same evaluation, for ablations (`ftvsr compare`).

    Each entry is either the path of one of our checkpoints (`FTVSR.from_checkpoint`), evaluated
    here on every set of `sets`, or an MLflow run id (needs `mlflow`, the settings of the
    tracking store): a training run, whose nested evaluation runs are read, or one evaluation
    run. The baselines (bicubic, Lanczos) on each set are computed once for the deltas of
    checkpoint entries.

    Returns one row per (model, dataset, crf): model, source, dataset, crf, protocol, psnr, ssim,
    delta_psnr, delta_ssim (FTVSR minus bicubic), delta_psnr_lanczos, delta_ssim_lanczos (FTVSR
    minus Lanczos; NaN for an MLflow run that has none).
    """
    names = [str(e) for e in entries]
    if not names:
        raise FTVSRError("compare: no models given")
    labels = list(labels) if labels is not None else [Path(e).stem if Path(e).is_file() else e for e in names]
    if len(labels) != len(names):
        raise FTVSRError(f"compare: {len(names)} models but {len(labels)} labels")
    settings: dict[str, Any] = dict(
        protocol=protocol,
        convert_to_y=convert_to_y,
        crop_border=crop_border,
        test_frames=test_frames,
        progress=progress,
    )
    baseline_cache: dict[tuple[str, str], pd.DataFrame] = {}  # (dataset, crf) -> means indexed by method
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
                if key not in baseline_cache:
                    base = evaluate_set(s.lq_dir, s.gt_dir, methods=BASELINES, dataset=s.dataset, crf=s.crf, **settings)
                    baseline_cache[key] = overall_means(base).set_index("method")
                ours = overall_means(
                    evaluate_set(
                        s.lq_dir,
                        s.gt_dir,
                        model=model,
                        methods=("ftvsr",),
                        dataset=s.dataset,
                        crf=s.crf,
                        chunk=chunk,
                        chunk_overlap=chunk_overlap,
                        tile=tile,
                        device=device,
                        **settings,
                    )
                ).iloc[0]
                deltas = {}
                for baseline in BASELINES:
                    base = baseline_cache[key].loc[baseline]
                    psnr_name, ssim_name = delta_names(baseline)
                    deltas[psnr_name] = ours["psnr"] - base["psnr"]
                    deltas[ssim_name] = ours["ssim"] - base["ssim"]
                rows.append(
                    {
                        "model": label,
                        "source": entry,
                        "dataset": s.dataset,
                        "crf": s.crf,
                        "protocol": ours["protocol"],
                        "psnr": ours["psnr"],
                        "ssim": ours["ssim"],
                        **deltas,
                    }
                )
        elif mlflow is not None:
            client = client or tracking.client_for(mlflow)[0]
            rows += _rows_from_mlflow(client, entry, label)
        else:
            raise FTVSRError(
                f"compare: {entry} is not a checkpoint file (and no MLflow tracking URI was given "
                "to look it up as a run id)"
            )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def format_comparison(table: pd.DataFrame) -> str:
    """Markdown of a `compare_models` table: one row per model, one column per (dataset, crf), each cell
    PSNR/SSIM and its Δ PSNR against each baseline, e.g. "27.00/0.8000 (+2.00 vs bicubic, +1.50 vs Lanczos)"."""
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
            deltas = [
                f"{r[delta_names(b)[0]]:+.2f} vs {BASELINE_TITLES[b]}"
                for b in BASELINES
                if math.isfinite(r[delta_names(b)[0]])
            ]
            if deltas:
                cell += f" ({', '.join(deltas)})"
            cells.append(cell)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
