"""Stage `train`: FTVSR on the packed training clips, tracked in MLflow, as one task.

One process by default; `--nproc N` runs the same trainer under torchrun (DDP: gloo on CPU,
nccl on GPU). Checkpoints go to a folder keyed by the settings, so an interrupted run resumes
exactly and a changed configuration starts afresh. The task is cached on the params file's
content, the LMDBs and the code (see `pipelines/_common.py`); it runs whenever the model is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from prefect import flow
from pydantic import Field

from ftvsr import tracking
from ftvsr.launch import run_training
from ftvsr.params import PARAMS_FILE
from pipelines._common import positive_int, run_stage, stage_parser, stage_task


@stage_task(
    "train {out}",
    modules=("ftvsr.train", "ftvsr.launch", "ftvsr.losses", "ftvsr.models", "ftvsr.data.datasets"),
    reads=("lmdb",),
    contents=("params_file",),
)
def train_model(lmdb: Path, out: Path, work_dir: Path, params_file: Path, nproc: int) -> str | None:
    """Train (or resume) into `out`; the MLflow run id."""
    return run_training(params_file, lmdb, out, work_dir, nproc=nproc)


@flow(name="train")
def train_flow(
    lmdb: Path, out: Path, work_dir: Path, params_file: Path = PARAMS_FILE, nproc: Annotated[int, Field(ge=1)] = 1
) -> str | None:
    done = out.is_file() and out.with_name(tracking.TRAIN_RUN_FILE).is_file()
    run = train_model if done else train_model.with_options(refresh_cache=True)
    return run(lmdb, out, work_dir, params_file, nproc)


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--lmdb", type=Path, required=True, help="folder of hr.lmdb and <level>.lmdb")
    parser.add_argument("--out", type=Path, required=True, help="the trained model (.pth)")
    parser.add_argument("--work-dir", type=Path, required=True, help="checkpoints, for resuming")
    parser.add_argument("--nproc", type=positive_int, default=1, help="processes (torchrun) on this machine")
    args = parser.parse_args()
    run_stage(lambda: train_flow(args.lmdb, args.out, args.work_dir, args.params, args.nproc))


if __name__ == "__main__":
    main()
