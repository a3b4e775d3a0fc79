"""Stage `train`: FTVSR on the packed training clips, tracked in MLflow.

One process by default; `--nproc N` runs the same trainer under torchrun (DDP: gloo on CPU,
nccl on GPU). Checkpoints go to a folder keyed by the settings, so an interrupted run resumes
exactly and a changed configuration starts afresh.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from ftvsr.launch import run_training
from ftvsr.params import PARAMS_FILE
from pipelines._common import run_stage, stage_parser


@flow(name="train")
def train_flow(lmdb: Path, out: Path, work_dir: Path, params_file: Path = PARAMS_FILE, nproc: int = 1) -> str | None:
    return run_training(params_file, lmdb, out, work_dir, nproc=nproc)


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--lmdb", type=Path, required=True, help="folder of hr.lmdb and <level>.lmdb")
    parser.add_argument("--out", type=Path, required=True, help="the trained model (.pth)")
    parser.add_argument("--work-dir", type=Path, required=True, help="checkpoints, for resuming")
    parser.add_argument("--nproc", type=int, default=1, help="processes (torchrun) on this machine")
    args = parser.parse_args()
    run_stage(lambda: train_flow(args.lmdb, args.out, args.work_dir, args.params, args.nproc))


if __name__ == "__main__":
    main()
