"""MLflow conventions against a real SQLite store; git and DVC versions from real repositories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from dvc_project import git

from ftvsr import tracking
from ftvsr.compare import compare_models, format_comparison
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


def test_configure_a_sqlite_store(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv(tracking.TRACKING_URI_ENV, raising=False)
    monkeypatch.delenv(tracking.DVC_ROOT_ENV, raising=False)
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
    monkeypatch.setenv("DVC_EXP_NAME", "crf-ablation")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0123abc")
    tags = tracking.run_tags("train", [tmp_path / "mlflow.db"], {"profile": "sample"})
    assert tags["stage"] == "train" and tags["profile"] == "sample" and tags["dvc_data_version"].startswith("files-")
    assert tags[tracking.DVC_EXPERIMENT_TAG] == "crf-ablation" and tags[tracking.DVC_BASELINE_TAG] == "0123abc"


def test_where_runs_go_env_dvc_root_and_a_moved_project(tmp_path, monkeypatch):
    """MLFLOW_TRACKING_URI wins; under DVC (also `dvc exp run --temp`, queued runs) relative
    locations are the workspace's (DVC_ROOT); a moved project's store finds its artifacts again."""
    import mlflow

    settings = MlflowSettings(tracking_uri="sqlite:///mlflow.db", artifact_location="mlartifacts", experiment="exp")
    monkeypatch.delenv(tracking.TRACKING_URI_ENV, raising=False)
    workspace, temporary_copy = tmp_path / "workspace", tmp_path / "workspace/.dvc/tmp/exps/tmp123"
    temporary_copy.mkdir(parents=True)
    monkeypatch.chdir(temporary_copy)
    monkeypatch.setenv(tracking.DVC_ROOT_ENV, str(workspace))
    assert tracking.tracking_uri(settings) == f"sqlite:///{workspace}/mlflow.db"
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, f"sqlite:///{tmp_path}/elsewhere.db")
    assert tracking.tracking_uri(settings) == f"sqlite:///{tmp_path}/elsewhere.db"
    monkeypatch.delenv(tracking.TRACKING_URI_ENV)

    experiment_id = tracking.configure(settings)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_text("kept", "note.txt")
    moved = tmp_path / "moved"
    monkeypatch.chdir(tmp_path)
    workspace.rename(moved)
    monkeypatch.setenv(tracking.DVC_ROOT_ENV, str(moved))
    monkeypatch.chdir(moved)
    assert tracking.configure(settings) == experiment_id
    assert mlflow.get_experiment(experiment_id).artifact_location == (moved / "mlartifacts").as_uri()
    assert mlflow.get_run(run.info.run_id).info.artifact_uri.startswith((moved / "mlartifacts").as_uri())
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/note.txt") == "kept"


def _training_run(experiment_id: str, model_path: Path, crf_levels: list) -> str:
    import mlflow

    tags = {"stage": "train", tracking.MODEL_SHA_TAG: tracking.file_sha256(model_path)}
    with mlflow.start_run(experiment_id=experiment_id, run_name="train-small", tags=tags) as run:
        mlflow.log_params({"train.crf_levels": json.dumps(crf_levels), "model.mid_channels": "8", "data.x": "1"})
    return run.info.run_id


def _summary(ftvsr_psnr: float, bicubic_psnr: float = 25.0, lanczos_psnr: float = 25.5) -> dict:
    """A `level_summary`: FTVSR, both baselines and FTVSR's deltas against each."""
    return {
        "bicubic": {"psnr": bicubic_psnr, "ssim": 0.7},
        "lanczos": {"psnr": lanczos_psnr, "ssim": 0.72},
        "ftvsr": {"psnr": ftvsr_psnr, "ssim": 0.8},
        "delta_psnr": ftvsr_psnr - bicubic_psnr,
        "delta_ssim": 0.1,
        "delta_psnr_lanczos": ftvsr_psnr - lanczos_psnr,
        "delta_ssim_lanczos": 0.08,
    }


def test_evaluation_metric_names():
    assert tracking.evaluation_metrics(_summary(26.0)) == {
        "bicubic_psnr": 25.0,
        "bicubic_ssim": 0.7,
        "lanczos_psnr": 25.5,
        "lanczos_ssim": 0.72,
        "ftvsr_psnr": 26.0,
        "ftvsr_ssim": 0.8,
        "delta_psnr": 1.0,
        "delta_ssim": 0.1,
        "delta_psnr_lanczos": 0.5,
        "delta_ssim_lanczos": 0.08,
    }


def test_evaluations_nest_under_their_training_run_once(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv(tracking.TRACKING_URI_ENV, raising=False)
    monkeypatch.setenv(tracking.DVC_ROOT_ENV, str(tmp_path))
    settings = MlflowSettings(experiment="exp")
    experiment_id = tracking.configure(settings)
    models, runs = {}, {}
    for name, levels in (("raw_only", ["raw"]), ("all", ["raw", 15, 25, 35])):
        models[name] = tmp_path / f"{name}.pth"
        models[name].write_bytes(name.encode())
        runs[name] = _training_run(experiment_id, models[name], levels)
    (tmp_path / "clips.csv").write_text("clip,psnr\na,27\n")

    def evaluate(name: str, level: str, psnr: float, test_frames=None):
        return tracking.log_evaluation(
            tracking.model_runs(settings, models[name]),
            _summary(psnr),
            dataset="carphone",
            level=level,
            protocol="full",
            evaluate_settings={"protocol": "full", "test_frames": test_frames},
            artifacts=[tmp_path / "clips.csv"],
        )

    first, parent = evaluate("raw_only", "crf35", 26.0)
    assert parent == runs["raw_only"]
    assert evaluate("raw_only", "crf35", 26.0) == (first, parent)  # again: the same run, not a second
    evaluate("raw_only", "raw", 28.0)
    evaluate("all", "crf35", 27.0)
    client = mlflow.MlflowClient()
    children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{runs['raw_only']}'")
    assert sorted(run.info.run_name for run in children) == ["eval-carphone-crf35", "eval-carphone-raw"]
    child = client.get_run(first)
    assert child.data.metrics["delta_psnr"] == pytest.approx(1.0) and child.data.metrics["ftvsr_psnr"] == 26.0
    assert child.data.metrics["delta_psnr_lanczos"] == pytest.approx(0.5) and child.data.metrics["lanczos_psnr"] == 25.5
    assert child.data.params["train.crf_levels"] == '["raw"]' and child.data.params["evaluate.protocol"] == "full"
    assert "data.x" not in child.data.params
    assert [a.path for a in client.list_artifacts(first)] == ["clips.csv"]
    assert len(client.get_metric_history(first, "delta_psnr")) == 1

    # The training runs carry the means: comparing two shows crf_levels beside Δ PSNR per level.
    trained = {name: client.get_run(run_id) for name, run_id in runs.items()}
    assert trained["raw_only"].data.metrics["carphone.crf35.delta_psnr"] == pytest.approx(1.0)
    assert trained["raw_only"].data.metrics["carphone.crf35.delta_psnr_lanczos"] == pytest.approx(0.5)
    assert trained["raw_only"].data.metrics["carphone.raw.delta_psnr"] == pytest.approx(3.0)
    assert trained["all"].data.metrics["carphone.crf35.delta_psnr"] == pytest.approx(2.0)
    assert trained["all"].data.params["train.crf_levels"] == '["raw", 15, 25, 35]'

    # Other evaluation settings: another evaluation run; weights no training run wrote: a top-level run.
    assert evaluate("raw_only", "crf35", 26.5, test_frames=3)[0] != first
    stranger = tmp_path / "stranger.pth"
    stranger.write_bytes(b"not trained here")
    models["stranger"] = stranger
    alone, no_parent = evaluate("stranger", "raw", 20.0)
    assert no_parent is None and tracking.PARENT_RUN_TAG not in client.get_run(alone).data.tags

    # Comparing by training run reads its nested evaluations; the report goes onto the training run.
    table = compare_models([runs["raw_only"], runs["all"]], labels=["raw only", "all"], mlflow=settings)
    row = table[(table["model"] == "all") & (table["crf"] == "crf35")].iloc[0]
    assert row["psnr"] == pytest.approx(27.0) and row["delta_psnr"] == pytest.approx(2.0)
    assert row["delta_psnr_lanczos"] == pytest.approx(1.5) and row["delta_ssim_lanczos"] == pytest.approx(0.08)
    assert "27.00/0.8000 (+2.00 vs bicubic, +1.50 vs Lanczos)" in format_comparison(table)
    # a run logged before Lanczos was evaluated has no Δ against it: the cell leaves it out
    older = table.assign(delta_psnr_lanczos=float("nan"), delta_ssim_lanczos=float("nan"))
    assert "27.00/0.8000 (+2.00 vs bicubic) |" in format_comparison(older)
    with pytest.raises(FTVSRError, match="no MLflow run"):
        compare_models(["0123456789abcdef"], mlflow=settings)
    with pytest.raises(FTVSRError, match="not a checkpoint file"):
        compare_models(["missing.pt"])
    report = tmp_path / "report"
    (report / "strips").mkdir(parents=True)
    (report / "results.md").write_text("# results\n")
    (report / "strips" / "strip_raw.png").write_bytes(b"png")
    assert tracking.log_report(tracking.model_runs(settings, models["all"]), sorted(report.iterdir())) == runs["all"]
    listed = {a.path for a in client.list_artifacts(runs["all"], "report")}
    assert listed == {"report/results.md", "report/strips"}
    assert tracking.log_report(tracking.model_runs(settings, stranger), [report / "results.md"]) is None


def test_the_model_is_an_mlflow_model_registered_once(tmp_path, monkeypatch):
    import mlflow
    import torch

    from ftvsr.models import FTVSR, save_model

    monkeypatch.delenv(tracking.TRACKING_URI_ENV, raising=False)
    monkeypatch.setenv(tracking.DVC_ROOT_ENV, str(tmp_path))
    experiment_id = tracking.configure(MlflowSettings(experiment="exp"))
    torch.manual_seed(0)
    model = FTVSR(mid_channels=4, num_blocks=1, d_model=64, n_heads=1, ftt_channels=64, flow="zero").eval()
    path = save_model(model, tmp_path / "ftvsr.pth")
    sha = tracking.file_sha256(path)
    with mlflow.start_run(experiment_id=experiment_id):
        assert tracking.log_model(model, registered_name="ftvsr-tiny", model_sha256=sha) == "1"
        assert tracking.log_model(model, registered_name="ftvsr-tiny", model_sha256=sha) is None
    versions = mlflow.MlflowClient().search_model_versions("name = 'ftvsr-tiny'")
    assert [v.tags[tracking.MODEL_SHA_TAG] for v in versions] == [sha]
    info = mlflow.models.get_model_info("models:/ftvsr-tiny/1")
    assert info.signature.inputs.inputs[0].shape == (-1, -1, 3, -1, -1)
    loaded = mlflow.pytorch.load_model("models:/ftvsr-tiny/1").eval()
    clip = torch.rand(1, 2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(clip), model(clip))


def test_bad_tracking_store(tmp_path):
    (tmp_path / "not_a_db").write_text("this is no SQLite database")
    with pytest.raises(FTVSRError, match="cannot open experiment"):
        tracking.configure(MlflowSettings(tracking_uri=f"sqlite:///{tmp_path / 'not_a_db'}", experiment="x"))


def test_git_commit_and_dirty(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.txt").write_text("one")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "first")
    assert tracking.git_commit(repo) == git(repo, "rev-parse", "HEAD")
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
