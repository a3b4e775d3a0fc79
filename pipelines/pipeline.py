"""The `ftvsr-pipeline` flow: every stage in the order of dvc.yaml, with the same params and paths.

For Prefect UI users (`pipelines/serve.py` deploys it); `dvc repro` remains the way to run the
pipeline with DVC's bookkeeping, and both run the same stage flows. The paths are dvc.yaml's,
mirrored once in `stage_paths` (tests/test_flows.py parses dvc.yaml and checks that the two agree).

    python -m pipelines.pipeline [--params params.yaml] [--crfs 25 35] [--task-runner processes]
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from prefect import flow
from pydantic import Field, ValidationError

from ftvsr.data import layout
from ftvsr.errors import FTVSRError
from ftvsr.params import PARAMS_FILE, Crf, Params, load_params
from pipelines._common import TaskRunnerKind, Workers, make_task_runner, positive_int, run_stage, stage_parser
from pipelines.compress import compress_flow
from pipelines.degrade import degrade_flow
from pipelines.evaluate import evaluate_flow
from pipelines.fetch import fetch_flow
from pipelines.pack import pack_flow
from pipelines.report import report_flow
from pipelines.train import train_flow

STAGES = ("fetch", "degrade", "compress", "pack", "train", "evaluate", "report")


@dataclass(frozen=True)
class StagePaths:
    """Every path the stages read and write for one profile, as dvc.yaml names them, under `root`."""

    root: Path
    profile: str

    @property
    def data(self) -> Path:
        return self.root / "data" / self.profile

    @property
    def hr(self) -> Path:
        """fetch's output: ``train/<clip>`` and ``test/<dataset>/<clip>``."""
        return self.data / "hr"

    @property
    def dataset_lr(self) -> Path:
        """fetch's LR frames that come with the dataset (REDS X4), in the layout of `hr`."""
        return self.data / "dataset_lr"

    @property
    def hr_train(self) -> Path:
        return self.hr / layout.TRAIN

    @property
    def lr_root(self) -> Path:
        """One folder per level: ``raw`` (degrade) and each CRF (compress)."""
        return self.data / "lr"

    def lr(self, level: str | int) -> Path:
        return self.lr_root / layout.level_name(level)

    @property
    def lr_raw(self) -> Path:
        return self.lr("raw")

    @property
    def lmdb(self) -> Path:
        return self.data / "lmdb"

    @property
    def model(self) -> Path:
        return self.root / "models" / self.profile / "ftvsr.pth"

    @property
    def work_dir(self) -> Path:
        """Training checkpoints, for resuming."""
        return self.root / "checkpoints" / self.profile

    @property
    def results_root(self) -> Path:
        return self.root / "results" / self.profile

    def results(self, dataset: str, level: str | int) -> Path:
        return self.results_root / dataset / layout.level_name(level)

    def eval_lr(self, dataset: str, level: str | int) -> Path:
        return self.lr(level) / layout.TEST / dataset

    def eval_gt(self, dataset: str) -> Path:
        return self.hr / layout.TEST / dataset

    @property
    def reports(self) -> Path:
        return self.root / "reports" / self.profile


def stage_paths(profile: str, root: str | os.PathLike = Path(".")) -> StagePaths:
    """The stages' paths for `profile` (dvc.yaml's ``${profile}``), relative to the project `root`."""
    return StagePaths(Path(root), profile)


def with_crfs(params: Params, crfs: list[int]) -> Params:
    """`params` with `data.crfs` replaced; training and evaluation levels become raw (if used) plus these CRFs.

    Raises FTVSRError, naming the first invalid value, before anything runs.
    """
    if not crfs:
        raise FTVSRError("crfs: give at least one CRF, or none at all to use data.crfs of the params file")
    settings = params.model_dump(mode="json")
    settings["data"]["crfs"] = list(crfs)
    for section, key in (("train", "crf_levels"), ("evaluate", "levels")):
        settings[section][key] = (["raw"] if "raw" in settings[section][key] else []) + list(crfs)
    try:
        return Params.model_validate(settings)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "crfs"
        raise FTVSRError(f"crfs {list(crfs)}: invalid value for '{key}': {first['msg']}") from None


@contextlib.contextmanager
def _params_for_run(params_file: Path, params: Params, overridden: bool) -> Iterator[Path]:
    """The params file the stages read: `params_file` itself, or a copy with the override for this run."""
    if not overridden:
        yield params_file
        return
    with tempfile.TemporaryDirectory(prefix="ftvsr-pipeline-") as folder:
        path = Path(folder) / params_file.name
        path.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
        load_params(path)  # what the stages will read must validate as the override did
        yield path


@flow(name="ftvsr-pipeline")
def pipeline_flow(
    params_file: Path = PARAMS_FILE,
    crfs: list[Crf] | None = None,
    root: Path = Path("."),
    task_runner: TaskRunnerKind = "threads",
    workers: Workers | None = None,
    nproc: Annotated[int, Field(ge=1)] | None = None,
) -> dict[str, Any]:
    """Run fetch, degrade, compress (each CRF), pack, train, evaluate (each dataset x level), report.

    Args:
        params_file: the profile's params (params.yaml or profiles/<name>.yaml).
        crfs: replaces data.crfs (and the CRFs trained on and evaluated) for this run.
        root: the project folder the dvc.yaml paths are relative to.
        task_runner, workers: how the data stages run their per-clip tasks (default: data.workers).
        nproc: training processes on this machine (torchrun; default: train.nproc).
    """
    params = load_params(params_file)
    if crfs is not None:
        params = with_crfs(params, crfs)
    make_task_runner(task_runner, params.data.workers if workers is None else workers)  # checked up front
    paths = stage_paths(params.profile, root)
    levels = [layout.level_name(level) for level in params.evaluate.levels]
    with _params_for_run(Path(params_file), params, crfs is not None) as run_params:
        fetch_flow(paths.hr, run_params, task_runner, workers, dataset_lr=paths.dataset_lr)
        degrade_flow(paths.hr, paths.lr_raw, run_params, task_runner, workers, dataset_lr=paths.dataset_lr)
        for crf in params.data.crfs:
            compress_flow(paths.lr_raw, paths.lr(crf), crf, run_params, task_runner, workers)
        pack_flow(paths.hr_train, paths.lr_root, paths.lmdb, run_params, task_runner, workers)
        train_run = train_flow(paths.lmdb, paths.model, paths.work_dir, run_params, nproc)
        for dataset in params.evaluate.datasets:
            for level in levels:
                evaluate_flow(
                    paths.model,
                    paths.eval_lr(dataset, level),
                    paths.eval_gt(dataset),
                    dataset,
                    level,
                    paths.results(dataset, level),
                    run_params,
                )
        report_flow(paths.results_root, paths.lr_root, paths.model, paths.reports, run_params)
    return {"profile": params.profile, "crfs": params.data.crfs, "train_run": train_run, "report": str(paths.reports)}


def main() -> None:
    parser = stage_parser(__doc__, task_runner=True)
    parser.add_argument("--crfs", type=int, nargs="+", default=None, help="replace data.crfs for this run")
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="project folder (dvc.yaml's paths are relative to it)"
    )
    parser.add_argument(
        "--nproc", type=positive_int, default=None, help="training processes on this machine (default: train.nproc)"
    )
    args = parser.parse_args()
    run_stage(lambda: pipeline_flow(args.params, args.crfs, args.root, args.task_runner, args.workers, args.nproc))


if __name__ == "__main__":
    main()
