"""Stage `evaluate@DATASET-LEVEL`: the trained model, bicubic and Lanczos on one test set at one
level, as one task; the per-clip table as a Prefect artifact. The report stage records every
evaluation in MLflow.

The model runs on `evaluate.device` (auto: CUDA when present) at `evaluate.precision`.
Retries: see `pipelines/_common.py`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow

from ftvsr.evaluate import evaluate_level
from ftvsr.inference import resolve_device
from ftvsr.models import load_model
from ftvsr.params import PARAMS_FILE, EvaluateSettings, load_params
from ftvsr.results import level_label
from pipelines._common import artifact_key, publish_table, run_stage, stage_flow_run_name, stage_parser, stage_task


@stage_task("evaluate {dataset}/{level}")
def evaluate_task(
    weights: Path, lr: Path, gt: Path, dataset: str, level: str, out: Path, settings: EvaluateSettings
) -> dict:
    """Evaluate one (dataset, level) into `out`; ``{"frames": count}``."""
    device = resolve_device(settings.device)
    model = load_model(weights)
    frames = evaluate_level(lr, gt, out, model=model, dataset=dataset, crf=level, settings=settings, device=device)
    return {"frames": len(frames)}


@flow(name="evaluate", flow_run_name=stage_flow_run_name("evaluate@{dataset}-{level}"))
def evaluate_flow(
    weights: Path, lr: Path, gt: Path, dataset: str, level: str, out: Path, params_file: Path = PARAMS_FILE
) -> dict:
    params = load_params(params_file)
    result = evaluate_task(weights, lr, gt, dataset, level, out, params.evaluate)
    publish_table(
        artifact_key("evaluate", params.profile, dataset, level),
        pd.read_csv(out / "clips.csv"),
        f"{dataset} at {level_label(level)}: PSNR / SSIM of FTVSR, bicubic and Lanczos per clip ({out / 'clips.csv'})",
    )
    return result


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--weights", type=Path, required=True, help="our checkpoint (.pth)")
    parser.add_argument("--lr", type=Path, required=True, help="LR set folder at this level")
    parser.add_argument("--gt", type=Path, required=True, help="HR set folder")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--level", required=True, help="raw or a CRF")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    args = parser.parse_args()
    run_stage(lambda: evaluate_flow(args.weights, args.lr, args.gt, args.dataset, args.level, args.out, args.params))


if __name__ == "__main__":
    main()
