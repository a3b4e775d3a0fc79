"""Released checkpoints through the evaluation and the report: the small parity checkpoint in the
library, and a published-size checkpoint through `ftvsr evaluate --released`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from ftvsr.evaluate import evaluate_level
from ftvsr.io.frames import write_clip
from ftvsr.models import FTVSR, load_official_weights
from ftvsr.params import EvaluateSettings
from ftvsr.report import build_report

ROOT = Path(__file__).resolve().parents[1]


def _tiny_test_set(root: Path, frames: int = 3, h: int = 16, w: int = 16) -> None:
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (frames, 4 * h, 4 * w, 3), dtype=np.uint8)
    write_clip(root / "hr" / "clip", hr)
    write_clip(root / "lr" / "raw" / "clip", hr[:, ::4, ::4])


def test_released_weights_evaluate_and_report(tmp_path, official, official_pth):
    _tiny_test_set(tmp_path / "reds4")
    config = dict(official["config"])
    model = load_official_weights(FTVSR(**config), official_pth).eval()
    out = tmp_path / "results" / "reds4" / "raw"
    frames = evaluate_level(
        tmp_path / "reds4" / "lr" / "raw",
        tmp_path / "reds4" / "hr",
        out,
        model=model,
        dataset="reds4",
        crf="raw",
        settings=EvaluateSettings(strip_frame=1),
        progress=False,
    )
    assert set(frames["method"]) == {"bicubic", "lanczos", "ftvsr"} and len(frames) == 9
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["ftvsr"]["psnr"]) and {"delta_psnr", "delta_psnr_lanczos"} <= set(metrics)
    written = build_report([out], tmp_path / "report", strips_dir=tmp_path / "results", profile="paper")
    table = written["table_md"].read_text()
    assert "REDS4" in table and "FTVSR (ours)" in table
    assert "–" in table  # Vid4 and the CRF columns were not evaluated: shown as missing


def test_cli_evaluates_a_published_size_checkpoint(tmp_path, synth_weights, official):
    published = FTVSR()  # the released FTVSR_REDS.pth configuration
    schema = {name: tuple(t.shape) for name, t in published.state_dict().items()}
    path = tmp_path / "FTVSR_REDS.pth"
    torch.save(synth_weights.official_checkpoint(schema, official["fixed"]), path)
    _tiny_test_set(tmp_path / "set", frames=2)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ftvsr.cli",
            "evaluate",
            "--weights",
            str(path),
            "--released",
            "reds",
            "--dataset",
            str(tmp_path / "set"),
            "--crf",
            "raw",
            "--out",
            str(tmp_path / "results"),
            "--report",
            str(tmp_path / "report"),
            # the sample profile's evaluation settings, whichever profile is active
            "--params",
            str(ROOT / "profiles" / "sample.yaml"),
        ],
        cwd=tmp_path,  # the MLflow store of the params (a relative path) lands here, not in the project
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "results" / "set" / "raw" / "frames.csv").is_file()
    table = (tmp_path / "report" / "table.md").read_text()  # one command: evaluated, then tabulated
    assert "FTVSR (ours)" in table and "| set Raw |" in table
