"""Stage `evaluate@DATASET-LEVEL`: the trained model and bicubic on one test set at one level, as one task,
then the result in MLflow: an evaluation run nested under the model's training run, and the
means on the training run itself (`ftvsr.tracking.log_evaluation`).

The model runs on `evaluate.device` (auto: CUDA when present) at `evaluate.precision`.
Retries: see `pipelines/_common.py`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow

from ftvsr import tracking
from ftvsr.evaluate import evaluate_level
from ftvsr.inference import resolve_device
from ftvsr.models import load_model
from ftvsr.params import NON_RESULT_KEYS, PARAMS_FILE, EvaluateSettings, load_params
from ftvsr.results import level_label, level_summary, overall_means, read_results
from pipelines._common import artifact_key, publish_table, run_stage, stage_flow_run_name, stage_parser, stage_task

# What identifies one evaluation besides the model, dataset and level: the settings that change its numbers.
EVALUATION_KEY_EXCLUDES = {"datasets", "levels"} | {
    key.split(".", 1)[1] for key in NON_RESULT_KEYS if key.startswith("evaluate.")
}


@stage_task("evaluate {dataset}/{level}")
def evaluate_task(
    weights: Path, lr: Path, gt: Path, dataset: str, level: str, out: Path, settings: EvaluateSettings
) -> dict:
    """Evaluate one (dataset, level) into `out`; ``{"frames": count}``."""
    device = resolve_device(settings.device)
    model = load_model(weights)
    frames = evaluate_level(lr, gt, out, model=model, dataset=dataset, crf=level, settings=settings, device=device)
    return {"frames": len(frames)}


@stage_task("record {dataset}/{level} in MLflow")
def record_task(
    weights: Path, lr: Path, gt: Path, dataset: str, level: str, out: Path, params_file: Path
) -> tuple[str, str | None]:
    """Log the evaluation in `out` to MLflow; (evaluation run id, training run id or None)."""
    params = load_params(params_file)
    overall = overall_means(read_results(out))
    return tracking.log_evaluation(
        params.mlflow,
        level_summary(overall),
        dataset=dataset,
        level=level_label(level),
        protocol=str(overall["protocol"].iloc[0]),
        model_path=weights,
        evaluate_settings=params.evaluate.model_dump(mode="json", exclude=EVALUATION_KEY_EXCLUDES),
        artifacts=[out / "clips.csv", out / "metrics.json"],
        tags=tracking.run_tags("evaluate", [lr, gt], {"profile": params.profile}),
    )


@flow(name="evaluate", flow_run_name=stage_flow_run_name("evaluate@{dataset}-{level}"))
def evaluate_flow(
    weights: Path, lr: Path, gt: Path, dataset: str, level: str, out: Path, params_file: Path = PARAMS_FILE
) -> dict:
    params = load_params(params_file)
    result = evaluate_task(weights, lr, gt, dataset, level, out, params.evaluate)
    record_task(weights, lr, gt, dataset, level, out, params_file)
    publish_table(
        artifact_key("evaluate", params.profile, dataset, level),
        pd.read_csv(out / "clips.csv"),
        f"{dataset} at {level_label(level)}: PSNR / SSIM of FTVSR and bicubic per clip ({out / 'clips.csv'})",
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
