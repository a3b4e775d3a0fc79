"""MLflow conventions against a real SQLite store; git and DVC versions from real repositories."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ftvsr import tracking
from ftvsr.errors import FTVSRError
from ftvsr.params import MlflowSettings


def test_relative_locations_are_made_absolute(tmp_path):
    assert tracking.resolve_tracking_uri("sqlite:///mlflow.db", tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert tracking.resolve_tracking_uri("sqlite:///runs/db.sqlite", tmp_path) == f"sqlite:///{tmp_path}/runs/db.sqlite"
    assert tracking.resolve_tracking_uri("sqlite:////abs/mlflow.db", tmp_path) == "sqlite:////abs/mlflow.db"
    assert tracking.resolve_tracking_uri("http://host:5000", tmp_path) == "http://host:5000"
    assert tracking.resolve_tracking_uri("mlruns", tmp_path) == (tmp_path / "mlruns").as_uri()
    assert tracking.resolve_artifact_location("mlartifacts", tmp_path) == (tmp_path / "mlartifacts").as_uri()
    assert tracking.resolve_artifact_location("s3://bucket/x", tmp_path) == "s3://bucket/x"


def test_configure_runs_and_child_runs_in_a_sqlite_store(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)  # the relative default `sqlite:///mlflow.db` is relative to here
    settings = MlflowSettings(tracking_uri="sqlite:///mlflow.db", artifact_location="mlartifacts", experiment="exp")
    experiment_id = tracking.configure(settings)
    assert (tmp_path / "mlflow.db").is_file()
    experiment = mlflow.get_experiment(experiment_id)
    assert experiment.name == "exp" and experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()
    assert tracking.configure(settings) == experiment_id  # found, not created again

    mlflow.MlflowClient().delete_experiment(experiment_id)
    assert tracking.configure(settings) == experiment_id  # a deleted experiment is restored
    assert mlflow.get_experiment(experiment_id).lifecycle_stage == "active"

    params = tracking.flatten(
        {"train": {"optimizer": {"lr": 2e-4, "betas": [0.9, 0.99]}, "grad_clip": None}, "profile": "sample"}
    )
    assert params == {
        "train.optimizer.lr": "0.0002",
        "train.optimizer.betas": "[0.9, 0.99]",
        "train.grad_clip": "null",
        "profile": "sample",
    }
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=tracking.train_run_name("sample"),
        tags=tracking.run_tags("train", [tmp_path / "mlflow.db"], {"profile": "sample"}),
    ) as run:
        mlflow.log_params({**params, **{f"many.p{i}": str(i) for i in range(150)}})  # > one batch of 100
    parent = run.info.run_id
    with tracking.start_child_run(parent, tracking.eval_run_name("vid4", 25), experiment_id, {"stage": "evaluate"}):
        mlflow.log_metric("psnr", 25.0)

    runs = {r.info.run_name: r for r in mlflow.search_runs(experiment_ids=[experiment_id], output_format="list")}
    assert set(runs) == {"train-sample", "eval-vid4-25"}
    train_run, child = runs["train-sample"], runs["eval-vid4-25"]
    assert len(train_run.data.params) == 154 and train_run.data.params["train.optimizer.lr"] == "0.0002"
    assert train_run.data.tags["stage"] == "train" and train_run.data.tags["profile"] == "sample"
    assert train_run.data.tags["dvc_data_version"].startswith("files-")
    assert child.data.tags[tracking.PARENT_RUN_TAG] == parent and child.data.metrics["psnr"] == 25.0

    run_file = tracking.write_train_run(tmp_path / "out" / tracking.TRAIN_RUN_FILE, {"run_id": parent})
    assert tracking.read_train_run(run_file) == {"run_id": parent}


def test_bad_tracking_store_and_run_file(tmp_path):
    with pytest.raises(FTVSRError, match=re.escape("train_run.json")):
        tracking.read_train_run(tmp_path / "train_run.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(FTVSRError, match="JSON object"):
        tracking.read_train_run(tmp_path / "bad.json")
    (tmp_path / "not_a_db").write_text("this is no SQLite database")
    with pytest.raises(FTVSRError, match="cannot open experiment"):
        tracking.configure(MlflowSettings(tracking_uri=f"sqlite:///{tmp_path / 'not_a_db'}", experiment="x"))


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_git_commit_and_dirty(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "first")
    assert tracking.git_commit(repo) == _git(repo, "rev-parse", "HEAD")
    assert tracking.git_dirty(repo) is False
    (repo / "untracked.txt").write_text("ignored")
    assert tracking.git_dirty(repo) is False
    (repo / "a.txt").write_text("two")
    assert tracking.git_dirty(repo) is True
    if tracking.git_commit(outside) is None:  # /tmp itself might sit inside some repository
        assert tracking.git_dirty(outside) is None


def test_dvc_data_version_from_dvc_lock_or_a_manifest(tmp_path):
    data = tmp_path / "data" / "train.lmdb"
    data.mkdir(parents=True)
    (data / "data.mdb").write_bytes(b"x" * 100_000)
    (data / "meta_info.txt").write_text("clip/00000000.png (64,64,3) 1\n")

    by_files = tracking.dvc_data_version([data])
    assert by_files.startswith("files-") and by_files == tracking.dvc_data_version([data])
    (data / "meta_info.txt").write_text("clip/00000001.png (64,64,3) 1\n")  # same size, new content
    assert tracking.dvc_data_version([data]) != by_files
    assert tracking.dvc_data_version([tmp_path / "missing"]) is None

    lock = {
        "schema": "2.0",
        "stages": {
            "pack": {
                "cmd": "pack",
                "outs": [
                    {"path": "data/train.lmdb", "hash": "md5", "md5": "0123456789abcdef.dir", "size": 1, "nfiles": 2}
                ],
            }
        },
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    by_dvc = tracking.dvc_data_version([data])
    assert by_dvc.startswith("dvc-")
    assert tracking.dvc_data_version([tmp_path / "data"]) == by_dvc  # the folder holding the output
    lock["stages"]["pack"]["outs"][0]["md5"] = "fedcba9876543210.dir"
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert tracking.dvc_data_version([data]) not in (by_dvc, by_files)
    # a path DVC does not record makes the version a manifest one
    other = tmp_path / "other.txt"
    other.write_text("x")
    assert tracking.dvc_data_version([data, other]).startswith("files-")


def test_system_metrics_need_psutil():
    try:
        import psutil  # noqa: F401
    except ImportError:
        assert tracking.system_metrics_available() is False
    else:
        assert tracking.system_metrics_available() is True
