"""Stage `report`: tables, plots and visual strips from every evaluation; the sweep in MLflow."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from ftvsr import tracking
from ftvsr.data import layout
from ftvsr.data.published_results import TRAINING_SETS
from ftvsr.errors import FTVSRError
from ftvsr.evaluate import log_evaluation_mlflow, read_results
from ftvsr.params import PARAMS_FILE, load_params
from ftvsr.report import build_report
from pipelines._common import run_stage, stage_parser


@task
def log_sweep(result_dirs: dict[tuple[str, str], Path], train_run: Path, params_file: Path) -> str:
    params = load_params(params_file)
    model_run = tracking.read_train_run(train_run).get("run_id")
    return log_evaluation_mlflow(
        {key: read_results(folder) for key, folder in result_dirs.items()},
        tracking_uri=params.mlflow.tracking_uri,
        experiment=params.mlflow.experiment,
        artifact_location=params.mlflow.artifact_location,
        sweep_name=f"evaluate-{params.profile}",
        model_run_id=model_run,
        params={"profile": params.profile, **params.evaluate.model_dump(mode="json")},
    )


@flow(name="report")
def report_flow(results: Path, bitrates: Path, train_run: Path, out: Path, params_file: Path = PARAMS_FILE) -> None:
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
    )
    log_sweep(result_dirs, train_run, params_file)


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--results", type=Path, required=True, help="results/<profile>")
    parser.add_argument("--bitrates", type=Path, required=True, help="LR root holding each level's bitrate.csv")
    parser.add_argument("--train-run", type=Path, required=True, help="train_run.json of the evaluated model")
    parser.add_argument("--out", type=Path, required=True, help="reports/<profile>")
    args = parser.parse_args()
    run_stage(lambda: report_flow(args.results, args.bitrates, args.train_run, args.out, args.params))


if __name__ == "__main__":
    main()
