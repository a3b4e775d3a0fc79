"""Identical inputs give identical DVC hashes: two clean `dvc repro` runs of a tiny profile, in
two temporary copies of the project, write the same `dvc.lock` (every stage's outputs, the LMDBs
and the model file included, hash the same)."""

from __future__ import annotations

import pytest
import yaml
from test_pipeline import _dvc, _merge, _project_copy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # two whole pipeline runs

# Smaller still than test_pipeline's profile: what matters is that every kind of output is made
# (frames, a CRF level, the LMDBs, a trained model, an evaluation, the report), not how many.
SMALLER = {
    "data": {
        "sample": {
            "bigbuckbunny": {"num_frames": 5, "max_height": 64, "max_width": 96},
            "carphone": {"num_frames": 4},
        }
    },
    "train": {
        "iterations": 2,
        "scheduler": {"name": "cosine_restart", "periods": [2], "restart_weights": [1.0], "min_lr": 1e-7},
        "checkpoint_every": 1,
    },
    "evaluate": {"levels": [25], "strip_frame": 1},
}


def _outs(lock: dict) -> dict[tuple[str, str], str]:
    """(stage, path) -> the md5 DVC recorded, for every output of every stage."""
    return {
        (stage, out["path"]): out.get("md5") for stage, entry in lock["stages"].items() for out in entry.get("outs", [])
    }


def test_two_clean_runs_write_the_same_dvc_lock(tmp_path, monkeypatch):
    # Each stage starts an ephemeral Prefect server: its own database, and time to start on busy cores.
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    projects = []
    for name in ("first", "second"):
        project = _project_copy(tmp_path / name)
        params = _merge(yaml.safe_load((project / "params.yaml").read_text()), SMALLER)
        assert params["train"]["threads"] == 1  # the sample profile's: one thread, deterministic CPU kernels
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        (project / "dvc.lock").unlink(missing_ok=True)  # clean: no entries of the sample's stages
        projects.append(project)
    for project in projects:  # one after the other: two ephemeral Prefect servers at once time out
        run = _dvc(project, "repro")
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    first, second = (yaml.safe_load((project / "dvc.lock").read_text()) for project in projects)
    outs = _outs(first)
    assert {path for _, path in outs} >= {"data/sample/lmdb", "models/sample/ftvsr.pth"}
    differ = {key: (md5, _outs(second).get(key)) for key, md5 in outs.items() if _outs(second).get(key) != md5}
    assert not differ, f"outputs whose hash differs between identical runs: {differ}"
    assert first == second
    assert (projects[0] / "dvc.lock").read_bytes() == (projects[1] / "dvc.lock").read_bytes()
