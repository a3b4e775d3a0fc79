"""The whole pipeline, for real: `dvc repro` in a temporary copy of the project with a tiny
profile (real DVC, Prefect, MLflow, ffmpeg, LMDB; training as 2 DDP processes launched by the
train stage), then what a user does next:

- settings that change no result (workers, threads, intervals, the device, MLflow) re-run nothing;
- an ablation of a data setting and back: the way back is restored from DVC's run-cache (all but
  the report, which git keeps);
- the stages whose outputs could drift (LR, H.264, LMDB, the model) re-run from scratch give
  the same dvc.lock: identical inputs, identical hashes;
- an invalid param is one line.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
import yaml
from dvc_project import dvc, project_copy, read_params, write_params

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
        "nproc": 2,  # the train stage launches torchrun: DDP over gloo
    },
    "evaluate": {"levels": ["raw", 25], "strip_frame": 2},
}
STAGES = ("fetch", "degrade", "compress@25", "pack", "train", "evaluate@carphone-raw", "evaluate@carphone-25", "report")
# Not results: none of these may re-run a stage (ftvsr.params.NON_RESULT_KEYS).
NOT_RESULTS = {
    "data": {"workers": 2},
    "train": {"log_every": 2, "eval_every": 50, "checkpoint_every": 1, "num_workers": 1, "threads": 2},
    "evaluate": {"threads": 2, "device": "cpu"},
    "mlflow": {"tracking_uri": "sqlite:///elsewhere.db", "experiment": "renamed"},
}


def _ran(result) -> list[str]:
    return [stage for stage in STAGES if f"Running stage '{stage}'" in result.stdout]


def _set(project, override: dict) -> None:
    from dvc_project import merge

    write_params(project, merge(read_params(project), override))


def test_dvc_repro_end_to_end_then_nothing_then_an_ablation_and_back(tmp_path, prefect_api_url):
    project = project_copy(tmp_path / "project", "sample", TINY)
    first = dvc(project, "repro", api_url=prefect_api_url)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert _ran(first) == list(STAGES)

    hr = sorted((project / "data/sample/hr/test/carphone/carphone").glob("*.png"))
    assert len(hr) == 6
    assert (project / "data/sample/lr/25/test/carphone/bitrate.csv").is_file()
    assert (project / "data/sample/lmdb/25.lmdb/meta_info.txt").is_file()
    assert (project / "data/sample/dataset_lr").is_dir()  # the sample comes without LR: empty
    assert not list((project / "data/sample").rglob("*.partial-*"))
    assert (project / "models/sample/ftvsr.pth").is_file()
    metrics = json.loads((project / "results/sample/carphone/25/metrics.json").read_text())
    assert {"ftvsr", "bicubic"} <= set(metrics)
    report = (project / "reports/sample/results.md").read_text()
    assert "Bicubic" in report and "CRF 25" in report
    assert (project / "reports/sample/strips/strip_crf25.png").stat().st_size > 0

    # MLflow holds the training run (with its loss curve, from 2 processes) and the evaluation sweep.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ftvsr-sample").experiment_id])
    train_run = next(run for run in runs if run.info.run_name.startswith("train"))
    assert len(client.get_metric_history(train_run.info.run_id, "loss")) >= 2
    assert train_run.data.params.get("world_size") == "2"
    assert sum(run.data.tags.get("model_run_id") == train_run.info.run_id for run in runs) >= 2
    lock, shipped = (project / "dvc.lock").read_text(), read_params(project)

    second = dvc(project, "repro", api_url=prefect_api_url)
    assert second.returncode == 0, second.stderr[-4000:]
    assert "Running stage" not in second.stdout and "Data and pipelines are up to date" in second.stdout

    _set(project, NOT_RESULTS)
    status = dvc(project, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    assert "Running stage" not in dvc(project, "repro", api_url=prefect_api_url).stdout

    # An ablation of a data setting runs what depends on it; switching back restores from the run-cache.
    _set(project, {"data": {"compress": {"preset": "veryfast"}}})
    ablation = dvc(project, "repro", api_url=prefect_api_url)
    assert ablation.returncode == 0, ablation.stdout[-4000:] + ablation.stderr[-4000:]
    assert _ran(ablation) == list(STAGES[2:])
    _set(project, {"data": {"compress": {"preset": "medium"}}})
    started = time.monotonic()
    back = dvc(project, "repro", api_url=prefect_api_url)
    restore_s = time.monotonic() - started
    assert back.returncode == 0, back.stdout[-4000:] + back.stderr[-4000:]
    # The report's outputs are kept by git, not DVC's cache: it alone is made again (seconds).
    assert _ran(back) == ["report"], back.stdout
    assert all(f"Stage '{stage}' is cached - skipping run" in back.stdout for stage in STAGES[2:-1]), back.stdout
    assert restore_s < 120, f"restoring from the run-cache took {restore_s:.0f} s"
    assert yaml.safe_load((project / "dvc.lock").read_text()) == yaml.safe_load(lock)

    # Identical inputs, identical hashes: the stages that could drift, re-run from scratch (with the
    # first run's settings: the loss curve's sampling follows train.log_every).
    write_params(project, shipped)
    shutil.rmtree(project / "checkpoints")  # or the train stage would resume from its last checkpoint
    again = dvc(
        project,
        "repro",
        "--force",
        "--single-item",
        "--no-run-cache",
        "degrade",
        "compress@25",
        "pack",
        "train",
        api_url=prefect_api_url,
    )
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert _ran(again) == ["degrade", "compress@25", "pack", "train"]
    assert (project / "dvc.lock").read_text() == lock

    # An invalid param is one clear line naming the key, and nothing runs.
    _set(project, {"train": {"optimizer": {"name": "sgd"}}})
    bad = dvc(project, "repro", "train", api_url=prefect_api_url)
    assert bad.returncode != 0
    assert "train.optimizer.name" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr
