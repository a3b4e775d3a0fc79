"""Stage `train`: FTVSR on the packed training clips, tracked in MLflow, as one task.

`train.nproc` processes: one runs here; 2 or more run the same trainer under torchrun (DDP:
gloo on CPU, nccl on GPU), launched by this stage, so `dvc repro` on a GPU node trains on all
its GPUs. Checkpoints go to a folder keyed by the run's identity, so an interrupted run resumes
exactly and a changed configuration starts afresh; a finished one only writes the model again.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from ftvsr.launch import run_training
from ftvsr.params import PARAMS_FILE
from pipelines._common import positive_int, run_stage, stage_flow_run_name, stage_parser, stage_task


@stage_task("train {out}")
def train_model(lmdb: Path, out: Path, work_dir: Path, params_file: Path, nproc: int | None) -> str | None:
    """Train (or resume) into `out`; the MLflow run id."""
    return run_training(params_file, lmdb, out, work_dir, nproc=nproc)


@flow(name="train", flow_run_name=stage_flow_run_name("train"))
def train_flow(
    lmdb: Path, out: Path, work_dir: Path, params_file: Path = PARAMS_FILE, nproc: int | None = None
) -> str | None:
    return train_model(lmdb, out, work_dir, params_file, nproc)


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--lmdb", type=Path, required=True, help="folder of hr.lmdb and <level>.lmdb")
    parser.add_argument("--out", type=Path, required=True, help="the trained model (.pth)")
    parser.add_argument("--work-dir", type=Path, required=True, help="checkpoints, for resuming")
    parser.add_argument(
        "--nproc", type=positive_int, default=None, help="processes (torchrun) on this machine (default: train.nproc)"
    )
    args = parser.parse_args()
    run_stage(lambda: train_flow(args.lmdb, args.out, args.work_dir, args.params, args.nproc))


if __name__ == "__main__":
    main()
