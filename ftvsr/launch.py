"""Start a training run from a params file: in this process, or under torchrun for several.

The train stage and `ftvsr train` both come here, so one process and DDP runs take the same
path to `ftvsr.train`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ftvsr import tracking
from ftvsr.data.layout import training_lmdbs
from ftvsr.errors import FTVSRError
from ftvsr.params import Params, load_params


def settings_digest(params: Params, data_id: Mapping[str, Any], nproc: int = 1) -> str:
    """The name of a training run's checkpoint folder: a digest of its identity
    (`ftvsr.train.run_identity`: the settings that change the result, the data's fingerprint, the
    number of processes). The loop checks a checkpoint against the same identity, so a run that
    may resume (say, with more iterations) finds its folder, and any other starts in a new one."""
    from ftvsr.train import identity_digest, run_identity

    return identity_digest(run_identity(params.model, params.train, data_id, nproc))


def torchrun_command(
    params_file: Path,
    gt_lmdb: Path,
    lq_lmdbs: dict,
    out_model: Path,
    work_dir: Path,
    nproc: int,
    extra: Sequence[str] = (),
) -> list[str]:
    """`torchrun --nproc_per_node N -m ftvsr.train ...` with this interpreter."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        *extra,
        "-m",
        "ftvsr.train",
        "--params",
        str(params_file),
        "--gt-lmdb",
        str(gt_lmdb),
        "--out-model",
        str(out_model),
        "--work-dir",
        str(work_dir),
    ]
    for level, path in lq_lmdbs.items():
        command += ["--lq-lmdb", f"{level}={path}"]
    return command


def resolve_nproc(nproc: int | str) -> int:
    """`train.nproc` as a process count: "auto" is one per visible CUDA device, or 1 without CUDA."""
    if nproc == "auto":
        import torch

        return max(torch.cuda.device_count(), 1)
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise FTVSRError(f"nproc must be an integer >= 1 or 'auto', got {nproc!r}")
    return nproc


def run_training(
    params_file: str | os.PathLike,
    lmdb_dir: str | os.PathLike,
    out_model: str | os.PathLike,
    work_dir: str | os.PathLike,
    nproc: int | None = None,
    progress: bool = True,
) -> str | None:
    """Train with the settings of `params_file` on the pack stage's LMDBs; returns the MLflow run id.

    Checkpoints go to a subfolder of `work_dir` named by the run's identity (`settings_digest`):
    an interrupted run, or one with more `train.iterations`, resumes exactly; changed data or
    settings that change the result start afresh in another folder. `nproc` (default:
    `train.nproc`) processes; 2 or more run under torchrun.
    """
    from ftvsr.train import data_fingerprint, train  # torch and friends: imported only when training

    params_file, out_model = Path(params_file), Path(out_model)
    params: Params = load_params(params_file)
    nproc = resolve_nproc(params.train.nproc if nproc is None else nproc)
    gt_lmdb, lq_lmdbs = training_lmdbs(lmdb_dir, params.data.crfs)
    data_id = data_fingerprint(gt_lmdb, lq_lmdbs, params.data)
    run_dir = Path(work_dir) / settings_digest(params, data_id, nproc)
    if nproc > 1:
        # --standalone: a rendezvous on a free local port (no clash with another job on the machine)
        command = torchrun_command(params_file, gt_lmdb, lq_lmdbs, out_model, run_dir, nproc, extra=["--standalone"])
        if not progress:
            command.append("--no-progress")
        if subprocess.run(command).returncode:
            raise FTVSRError(f"distributed training failed (its log is above): {' '.join(command)}")
        return tracking.training_run_id(params.mlflow, out_model)
    result = train(
        params.model,
        params.train,
        gt_lmdb=gt_lmdb,
        lq_lmdbs=lq_lmdbs,
        out_model=out_model,
        work_dir=run_dir,
        data_settings=params.data,
        mlflow_settings=params.mlflow,
        run_name=tracking.train_run_name(params.profile),
        registered_model=tracking.registered_model_name(params.profile),
        extra_params={"profile": params.profile, "data": params.data.model_dump(mode="json")},
        extra_tags={"profile": params.profile},
        progress=progress,
        data_id=data_id,
    )
    return result.run_id
