"""The whole pipeline, for real: `dvc repro` in a temporary copy of the project with a tiny
profile (real DVC, Prefect, MLflow, ffmpeg, LMDB), then what a user does next:

- settings that change no result (workers, threads, intervals, the device, MLflow) re-run nothing;
- the README's CRF ablation recipe, line by line: an experiment in the workspace and a queued one
  (run in a temporary copy), compared in `dvc exp show` and in MLflow, whose store is the
  project's for both;
- back to the first settings: restored from DVC's run-cache (all but the report, which git keeps);
- the stages whose outputs could drift (LR, H.264, LMDB, the model) re-run from scratch give
  the same dvc.lock: identical inputs, identical hashes;
- an invalid param is one line.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time

import pytest
import yaml
from dvc_project import ROOT, dvc, git, project_copy, read_params, write_params

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
            "rocket_pan": {"image": "rocket", "num_frames": 4, "height": 64, "width": 96, "pan": [1.5, 0.5]},
        },
        "train_clips": ["bigbuckbunny", "rocket_pan"],  # a video and a photo clip
        "test_sets": {"carphone": ["carphone"]},
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
        "threads": 1,  # the tests share the cores
    },
    "evaluate": {"datasets": ["carphone"], "levels": ["raw", 25], "strip_frame": 2, "threads": 1},
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


def _readme_recipe() -> list[list[str]]:
    """The `dvc` lines of the README's CRF ablation recipe (the code block after its marker)."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- the CRF ablation recipe.*?-->\s*```bash\n(.*?)```", readme, re.S)
    assert block, "README.md lost its CRF ablation recipe"
    lines = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    return [words for words in lines if words and words[0] == "dvc"]


def _prefect(api_url: str, kind: str, query: dict) -> list[dict]:
    import httpx

    answer = httpx.post(f"{api_url}/{kind}/filter", json={**query, "limit": 200}, timeout=30)
    answer.raise_for_status()
    return answer.json()


def _training_runs(client, experiment_id: str) -> list:
    return client.search_runs([experiment_id], "tags.stage = 'train'")


def _evaluation_runs(client, experiment_id: str, training) -> list[str]:
    nested = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{training.info.run_id}'")
    return sorted(run.info.run_name for run in nested)


def test_dvc_repro_end_to_end_then_nothing_then_the_readme_ablation_and_back(tmp_path, prefect_api_url):
    project = project_copy(tmp_path / "project", "sample", TINY)
    first = dvc(project, "repro", api_url=prefect_api_url)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert _ran(first) == list(STAGES)

    hr = sorted((project / "data/sample/hr/test/carphone/carphone").glob("*.png"))
    assert len(hr) == 6
    assert (project / "data/sample/lr/25/test/carphone/bitrate.csv").is_file()
    assert (project / "data/sample/lmdb/25.lmdb/meta_info.txt").is_file()
    packed = (project / "data/sample/lmdb/hr.lmdb/meta_info.txt").read_text().splitlines()
    assert {line.split("/")[0] for line in packed} == {"bigbuckbunny", "rocket_pan"}
    assert (project / "data/sample/dataset_lr").is_dir()  # the sample comes without LR: empty
    assert not list((project / "data/sample").rglob("*.partial-*"))
    assert (project / "models/sample/ftvsr.pth").is_file()
    metrics = json.loads((project / "results/sample/carphone/25/metrics.json").read_text())
    assert {"ftvsr", "bicubic"} <= set(metrics)
    report = (project / "reports/sample/results.md").read_text()
    assert "Bicubic" in report and "CRF 25" in report
    assert (project / "reports/sample/strips/strip_crf25.png").stat().st_size > 0

    # MLflow: the training run (loss curve, the registered model, the report) with
    # the evaluation's means, and its evaluation runs nested under it.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("ftvsr-sample").experiment_id
    (baseline,) = _training_runs(client, experiment_id)
    assert len(client.get_metric_history(baseline.info.run_id, "loss")) >= 2
    assert baseline.data.params.get("world_size") == "1"
    assert {"carphone.raw.delta_psnr", "carphone.crf25.ftvsr_psnr", "carphone.crf25.bicubic_ssim"} <= set(
        baseline.data.metrics
    )
    assert [int(v.version) for v in client.search_model_versions("name = 'ftvsr-sample'")] == [1]
    assert {"report/results.md", "report/strips"} <= {
        a.path for a in client.list_artifacts(baseline.info.run_id, "report")
    }
    assert _evaluation_runs(client, experiment_id, baseline) == ["eval-carphone-crf25", "eval-carphone-raw"]
    lock, shipped = (project / "dvc.lock").read_text(), read_params(project)

    second = dvc(project, "repro", api_url=prefect_api_url)
    assert second.returncode == 0, second.stderr[-4000:]
    assert "Running stage" not in second.stdout and "Data and pipelines are up to date" in second.stdout

    _set(project, NOT_RESULTS)
    # bytecode caches appear wherever the code is imported: never part of a stage's dependencies
    (project / "ftvsr/models/__pycache__").mkdir(exist_ok=True)
    (project / "ftvsr/models/__pycache__/stray.cpython-311.pyc").write_bytes(b"\0")
    status = dvc(project, "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    assert "Running stage" not in dvc(project, "repro", api_url=prefect_api_url).stdout
    write_params(project, shipped)

    # The README's CRF ablation recipe, as written there: an experiment here and a queued one.
    git(project, "config", "user.name", "t")  # experiments are git commits
    git(project, "config", "user.email", "t@t")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "baseline")
    for command in _readme_recipe():
        done = dvc(project, *command[1:], api_url=prefect_api_url)
        assert done.returncode == 0, f"{shlex.join(command)}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    shown = json.loads(dvc(project, "exp", "show", "--json").stdout)
    experiments = {
        exp["name"]: exp["data"]
        for row in shown
        for entry in row.get("experiments") or []
        for exp in entry.get("revs", [])
        if exp.get("name")
    }
    assert {"raw-only", "crf25-only"} <= set(experiments)
    for name in ("raw-only", "crf25-only"):
        metrics = experiments[name]["metrics"]["results/sample/carphone/25/metrics.json"]["data"]
        assert "delta_psnr" in metrics, name
    runs = {run.data.tags.get("dvc_experiment"): run for run in _training_runs(client, experiment_id)}
    assert set(runs) == {None, "raw-only", "crf25-only"}  # the queued one too: the project's store
    assert runs["raw-only"].data.params["train.crf_levels"] == '["raw"]'
    assert runs["crf25-only"].data.params["train.crf_levels"] == "[25]"
    for run in runs.values():
        assert {"carphone.raw.delta_psnr", "carphone.crf25.delta_psnr"} <= set(run.data.metrics)
        assert len(_evaluation_runs(client, experiment_id, run)) == 2  # nested, and never twice
    assert runs["crf25-only"].data.tags["dvc_baseline"] == git(project, "rev-parse", "HEAD")
    assert not list((project / ".dvc" / "tmp").rglob("mlflow.db"))  # nothing went into the temporary copy

    # The Prefect UI: flow runs named after the DVC stage and experiment, results as artifacts.
    wanted = ["evaluate@carphone-25", "report", "evaluate@carphone-raw [exp raw-only]", "train [exp crf25-only]"]
    flow_runs = _prefect(prefect_api_url, "flow_runs", {"flow_runs": {"name": {"any_": wanted}}})
    assert {run["name"] for run in flow_runs} == set(wanted)
    keys = ["evaluate-sample-carphone-25", "report-sample", "mlflow-sample"]
    artifacts = _prefect(prefect_api_url, "artifacts", {"artifacts": {"key": {"any_": keys}}})
    assert {artifact["key"] for artifact in artifacts} == set(keys)
    # other tests share the Prefect server: one of the links under this key is to one of these runs
    links = [a["data"] for a in artifacts if a["key"] == "mlflow-sample"]
    assert any(run.info.run_id in link for link in links for run in runs.values()), links

    # Back to the first settings: restored from the run-cache, the same dvc.lock.
    write_params(project, shipped)
    started = time.monotonic()
    back = dvc(project, "repro", api_url=prefect_api_url)
    restore_s = time.monotonic() - started
    assert back.returncode == 0, back.stdout[-4000:] + back.stderr[-4000:]
    # The report's outputs are kept by git, not DVC's cache: it alone is made again (seconds).
    assert _ran(back) == ["report"], back.stdout
    assert all(f"Stage '{stage}' is cached - skipping run" in back.stdout for stage in STAGES[4:-1]), back.stdout
    assert restore_s < 120, f"restoring from the run-cache took {restore_s:.0f} s"
    assert yaml.safe_load((project / "dvc.lock").read_text()) == yaml.safe_load(lock)
    assert len(_training_runs(client, experiment_id)) == 3

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
