"""Stage `report`: tables, plots and visual strips from every evaluation; in MLflow, each evaluation
as a run nested under the model's training run, its means on the training run itself
(`ftvsr.tracking.log_evaluation`), and the report's files on the training run (under `report/`).

One process records them all (MLflow loads once, not once per evaluate stage); recording again
updates the same runs."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from ftvsr import tracking
from ftvsr.data import layout
from ftvsr.data.published_results import TRAINING_SETS
from ftvsr.errors import FTVSRError
from ftvsr.params import NON_RESULT_KEYS, PARAMS_FILE, load_params
from ftvsr.report import build_report, evaluation_conditions
from ftvsr.results import level_label, level_summary, overall_means, read_results
from pipelines._common import (
    artifact_key,
    publish_link,
    publish_markdown,
    run_stage,
    stage_flow_run_name,
    stage_parser,
)

# What identifies one evaluation besides the model, dataset and level: the settings that change its numbers.
EVALUATION_KEY_EXCLUDES = {"datasets", "levels"} | {
    key.split(".", 1)[1] for key in NON_RESULT_KEYS if key.startswith("evaluate.")
}


@task
def record_in_mlflow(
    result_dirs: dict[tuple[str, str], Path], model: Path, lr_root: Path, out: Path, params_file: Path
) -> str | None:
    """Each evaluation as a run nested under the model's training run, and the report's files on
    that run; the run's page in MLflow's UI (None: no training run in the store wrote the model)."""
    params = load_params(params_file)
    runs = tracking.model_runs(params.mlflow, model)  # the model file hashed and looked up once
    for (dataset, level), folder in result_dirs.items():
        overall = overall_means(read_results(folder))
        tracking.log_evaluation(
            runs,
            level_summary(overall),
            dataset=dataset,
            level=level_label(level),
            protocol=str(overall["protocol"].iloc[0]),
            evaluate_settings=params.evaluate.model_dump(mode="json", exclude=EVALUATION_KEY_EXCLUDES),
            artifacts=[folder / "clips.csv", folder / "metrics.json"],
            tags=tracking.run_tags("evaluate", [lr_root / level / layout.TEST / dataset], {"profile": params.profile}),
        )
    training_run = tracking.log_report(runs, sorted(out.iterdir()))
    return None if training_run is None else tracking.run_url(params.mlflow, training_run, runs.experiment_id)


@flow(name="report", flow_run_name=stage_flow_run_name("report"))
def report_flow(results: Path, bitrates: Path, model: Path, out: Path, params_file: Path = PARAMS_FILE) -> None:
    params = load_params(params_file)
    result_dirs, bitrate_tables = {}, {}
    for dataset in params.evaluate.datasets:
        for level in params.evaluate.levels:
            name = layout.level_name(level)
            folder = results / dataset / name
            if not (folder / "frames.csv").is_file():
                raise FTVSRError(f"no evaluation results in {folder}: run the evaluate stage first")
            result_dirs[(dataset, name)] = folder
            table = bitrates / name / layout.TEST / dataset / "bitrate.csv"
            if table.is_file():
                bitrate_tables[(dataset, name)] = table
    build_report(
        list(result_dirs.values()),
        out,
        bitrate_tables=bitrate_tables,
        strips_dir=results,
        profile=params.profile,
        trained_on=TRAINING_SETS[params.data.source],
        conditions=evaluation_conditions(params),
    )
    run_page = record_in_mlflow(result_dirs, model, bitrates, out, params_file)
    publish_markdown(
        artifact_key("report", params.profile),
        (out / "results.md").read_text(),
        f"profile {params.profile}: {out / 'results.md'}",
    )
    if run_page is not None:
        publish_link(
            artifact_key("mlflow", params.profile),
            run_page,
            f"the model's training run {run_page.rsplit('/', 1)[-1]}",
            "training, its evaluations (nested runs) and this report in MLflow",
        )


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--results", type=Path, required=True, help="results/<profile>")
    parser.add_argument("--bitrates", type=Path, required=True, help="LR root holding each level's bitrate.csv")
    parser.add_argument("--model", type=Path, required=True, help="the evaluated model (gets the report in MLflow)")
    parser.add_argument("--out", type=Path, required=True, help="reports/<profile>")
    args = parser.parse_args()
    run_stage(lambda: report_flow(args.results, args.bitrates, args.model, args.out, args.params))


if __name__ == "__main__":
    main()
