"""Stage `train`: FTVSR on the packed training clips, tracked in MLflow.

One process by default; `--nproc N` runs the same trainer under torchrun (DDP, gloo on CPU,
nccl on GPU). Checkpoints go to a folder keyed by the settings, so an interrupted run resumes
exactly and a changed configuration starts afresh.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prefect import flow

from ftvsr import tracking
from ftvsr.data import layout
from ftvsr.errors import FTVSRError
from ftvsr.params import PARAMS_FILE, load_params
from ftvsr.train import train
from pipelines._common import run_stage, stage_key, stage_parser


@flow(name="train")
def train_flow(lmdb: Path, out: Path, work_dir: Path, params_file: Path = PARAMS_FILE, nproc: int = 1) -> str | None:
    params = load_params(params_file)
    levels = {level: lmdb / f"{layout.level_name(level)}.lmdb" for level in ["raw", *params.data.crfs]}
    run_dir = work_dir / stage_key({"model": params.model.model_dump(), "train": params.train.model_dump()}, [])
    if nproc > 1:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "-m", "ftvsr.train",
                   "--params", str(params_file), "--gt-lmdb", str(lmdb / "hr.lmdb"), "--out-model", str(out),
                   "--work-dir", str(run_dir)]
        command += [arg for level, path in levels.items() for arg in ("--lq-lmdb", f"{level}={path}")]
        if subprocess.run(command).returncode:
            raise FTVSRError(f"distributed training failed (see the log above): {' '.join(command)}")
        return tracking.read_train_run(out.with_name(tracking.TRAIN_RUN_FILE)).get("run_id")
    result = train(
        params.model, params.train, gt_lmdb=lmdb / "hr.lmdb", lq_lmdbs=levels, out_model=out, work_dir=run_dir,
        data_settings=params.data, mlflow_settings=params.mlflow, run_name=tracking.train_run_name(params.profile),
        extra_params={"profile": params.profile, "data": params.data.model_dump(mode="json")},
        extra_tags={"profile": params.profile},
    )
    return result.run_id


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
