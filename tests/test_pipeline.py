"""The whole pipeline, for real: `dvc repro` in a temporary copy of the project with a tiny
profile (real DVC, Prefect, MLflow, ffmpeg, LMDB), then a second `dvc repro` that does nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

TINY = {
    "data": {
        "sample": {
            "bigbuckbunny": {
                "video": "bigbuckbunny.mp4",
                "first_frame": 0,
                "num_frames": 8,
                "max_height": 96,
                "max_width": 128,
            },
            "carphone": {"video": "carphone_pristine.mp4", "first_frame": 0, "num_frames": 6},
        },
        "crfs": [25],
        "workers": 1,
    },
    "model": {"mid_channels": 8, "num_blocks": 1, "d_model": 64, "n_heads": 2, "ftt_channels": 64},
    "train": {
        "iterations": 3,
        "batch_size": 1,
        "num_frames": 3,
        "gt_patch_size": 64,
        "crf_levels": ["raw", 25],
        "scheduler": {"name": "cosine_restart", "periods": [3], "restart_weights": [1.0], "min_lr": 1e-7},
        "log_every": 1,
        "checkpoint_every": 2,
        "eval_every": 100,
    },
    "evaluate": {"levels": ["raw", 25], "strip_frame": 2},
}


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def _project_copy(dst: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    for name in files:
        if name.startswith(("data/", "models/", "results/", "reports/", "checkpoints/")):
            continue
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    params = _merge(yaml.safe_load((ROOT / "profiles" / "sample.yaml").read_text()), TINY)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ):
        subprocess.run(command, cwd=dst, check=True)
    return dst


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        PREFECT_LOGGING_LEVEL="WARNING",
        PYTHONPATH=str(project),
    )
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )


def test_dvc_repro_runs_every_stage_then_nothing(tmp_path):
    project = _project_copy(tmp_path / "project")
    first = _dvc(project, "repro")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    for stage in (
        "fetch",
        "degrade",
        "compress@25",
        "pack",
        "train",
        "evaluate@carphone-raw",
        "evaluate@carphone-25",
        "report",
    ):
        assert f"Running stage '{stage}'" in first.stdout

    hr = sorted((project / "data/sample/hr/test/carphone/carphone").glob("*.png"))
    assert len(hr) == 6
    assert (project / "data/sample/lr/25/test/carphone/bitrate.csv").is_file()
    assert (project / "data/sample/lmdb/25.lmdb/meta_info.txt").is_file()
    assert (project / "models/sample/ftvsr.pth").is_file()
    metrics = json.loads((project / "results/sample/carphone/25/metrics.json").read_text())
    assert {"ftvsr", "bicubic"} <= set(metrics)
    report = (project / "reports/sample/results.md").read_text()
    assert "Bicubic" in report and "CRF 25" in report
    assert (project / "reports/sample/strips/strip_crf25.png").stat().st_size > 0

    # MLflow holds the training run (with its loss curve) and the evaluation sweep.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ftvsr-sample").experiment_id])
    names = {run.info.run_name for run in runs}
    assert any(name.startswith("train") for name in names), names
    train_run = next(run for run in runs if run.info.run_name.startswith("train"))
    assert len(client.get_metric_history(train_run.info.run_id, "loss")) >= 2
    assert sum(run.data.tags.get("model_run_id") == train_run.info.run_id for run in runs) >= 2

    second = _dvc(project, "repro")
    assert second.returncode == 0, second.stderr[-4000:]
    assert "Running stage" not in second.stdout
    assert "Data and pipelines are up to date" in second.stdout

    # An invalid param is one clear line naming the key, and nothing runs.
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["optimizer"]["name"] = "sgd"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bad = _dvc(project, "repro", "train")
    assert bad.returncode != 0
    assert "train.optimizer.name" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr
