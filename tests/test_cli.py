"""The `ftvsr` command end to end on tiny data: every command runs the library for real, and bad
input is one line on stderr with exit code 1."""

from __future__ import annotations

import functools
import inspect
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ftvsr.cli import upscale
from ftvsr.inference import CHUNK_OVERLAP, TILE_OVERLAP
from ftvsr.io.frames import frame_name, read_clip, write_clip
from ftvsr.models import FTVSR, save_model

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def sample_project() -> Path:
    """A folder whose params.yaml is the sample profile: the CLI's defaults, whichever profile the
    project has active, and its relative MLflow store outside the project."""
    folder = Path(tempfile.mkdtemp(prefix="ftvsr-cli-"))
    shutil.copy(ROOT / "profiles" / "sample.yaml", folder / "params.yaml")
    return folder


def ftvsr(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ftvsr.cli", *map(str, args)],
        cwd=cwd or sample_project(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]  # beside progress bars
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0]


def smooth_clip(frames: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    big = np.kron(base, np.ones((8, 8, 1)))[:h, :w]
    return np.stack([np.roll(big, t, axis=1) for t in range(frames)]).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.pth"
    model = FTVSR(
        mid_channels=8,
        num_blocks=1,
        d_model=64,
        n_heads=2,
        ftt_channels=64,
        hf_once=True,
        zero_init_heads=True,
        flow="zero",
    )
    save_model(model, path)
    return path


def test_profile_switches_and_rejects_unknown(tmp_path):
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    result = ftvsr("profile", "paper", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["profile"] == "paper"
    assert_one_line_error(ftvsr("profile", "huge", cwd=tmp_path), "unknown profile 'huge'")


def test_degrade_compress_pack_on_a_tiny_set(tmp_path):
    write_clip(tmp_path / "hr" / "clip", smooth_clip(3, 48, 64))
    assert ftvsr("degrade", tmp_path / "hr", tmp_path / "lr", "--method", "bd").returncode == 0
    assert read_clip(tmp_path / "lr" / "clip").shape == (3, 12, 16, 3)
    result = ftvsr("compress", tmp_path / "lr", tmp_path / "lr25", "--crf", "25")
    assert result.returncode == 0, result.stderr
    assert "bitrate_kbps" in result.stdout and (tmp_path / "lr25" / "clip.mp4").is_file()
    result = ftvsr("pack", tmp_path / "lr25", tmp_path / "lr25.lmdb", "--verify")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "lr25.lmdb" / "meta_info.txt").read_text().count("\n") == 3


def test_bad_input_is_one_line(tmp_path):
    assert_one_line_error(ftvsr("degrade", tmp_path / "missing", tmp_path / "out"), "missing")
    write_clip(tmp_path / "lr" / "clip", smooth_clip(2, 16, 16))
    assert_one_line_error(ftvsr("compress", tmp_path / "lr", tmp_path / "out", "--crf", "60"), "0..51")
    assert_one_line_error(ftvsr("degrade", tmp_path / "lr", tmp_path / "out", "--method", "nearest"), "nearest")
    assert_one_line_error(
        ftvsr("upscale", tmp_path / "lr" / "clip", tmp_path / "up", "--weights", tmp_path / "nothing.pth"),
        "nothing.pth",
    )
    (tmp_path / "lr" / "clip" / frame_name(5)).write_bytes(b"not a png")
    assert_one_line_error(ftvsr("pack", tmp_path / "lr", tmp_path / "x.lmdb"), frame_name(5))
    assert not (tmp_path / "x.lmdb").exists()


def test_evaluate_report_upscale_with_a_tiny_model(tmp_path, tiny_model):
    hr = smooth_clip(4, 64, 64)
    lr = hr[:, ::4, ::4]  # any LR will do: the test checks the wiring, not the quality
    write_clip(tmp_path / "set" / "hr" / "clip", hr)
    write_clip(tmp_path / "set" / "lr" / "raw" / "clip", lr)
    out = tmp_path / "results"
    result = ftvsr("evaluate", "--weights", tiny_model, "--dataset", tmp_path / "set", "--crf", "raw", "--out", out)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "set" / "raw" / "metrics.json").read_text())
    assert {"bicubic", "lanczos", "ftvsr", "delta_psnr", "delta_psnr_lanczos"} <= set(metrics)
    result = ftvsr("report", "--results", out, "--out", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    assert "| Bicubic | Lanczos | FTVSR (ours) |" in (tmp_path / "report" / "results.md").read_text()

    result = ftvsr("upscale", tmp_path / "set" / "lr" / "raw" / "clip", tmp_path / "up", "--weights", tiny_model)
    assert result.returncode == 0, result.stderr
    assert read_clip(tmp_path / "up").shape == (4, 64, 64, 3)
    result = ftvsr("upscale", tmp_path / "set" / "lr" / "raw" / "clip", tmp_path / "up.mp4", "--weights", tiny_model)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "up.mp4").stat().st_size > 0


def test_upscale_overlap_defaults_are_the_library_defaults():
    options = inspect.signature(upscale).parameters  # the CLI does not import torch to read them
    assert options["chunk_overlap"].default == CHUNK_OVERLAP
    assert options["tile_overlap"].default == TILE_OVERLAP


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a computer without CUDA")
def test_a_missing_device_is_one_line(tmp_path, tiny_model):
    write_clip(tmp_path / "lr" / "clip", smooth_clip(2, 16, 16))
    result = ftvsr("upscale", tmp_path / "lr" / "clip", tmp_path / "up", "--weights", tiny_model, "--device", "cuda")
    assert_one_line_error(result, "device 'cuda' is not available")
    assert not (tmp_path / "up").exists()
    result = ftvsr("evaluate", "--weights", tiny_model, "--dataset", tmp_path / "set", "--device", "cuda:1")
    assert_one_line_error(result, "device 'cuda:1' is not available")
    result = ftvsr("upscale", tmp_path / "lr" / "clip", tmp_path / "up", "--weights", tiny_model, "--device", "gpu")
    assert_one_line_error(result, "unknown device 'gpu'")


# "damaged": a pickle opcode fetching a memo entry that is not there; torch.load raises KeyError
@pytest.mark.parametrize("content", [b"not a checkpoint", b"j\x01\x00\x00\x00" * 4], ids=["text", "damaged"])
def test_an_unreadable_checkpoint_is_one_line(tmp_path, content):
    write_clip(tmp_path / "set" / "lr" / "raw" / "clip", smooth_clip(2, 16, 16))
    write_clip(tmp_path / "set" / "hr" / "clip", smooth_clip(2, 64, 64))
    (tmp_path / "bad.pth").write_bytes(content)
    lr = tmp_path / "set" / "lr" / "raw" / "clip"
    assert_one_line_error(ftvsr("upscale", lr, tmp_path / "up", "--weights", tmp_path / "bad.pth"), "bad.pth")
    result = ftvsr("upscale", lr, tmp_path / "up", "--weights", tmp_path / "bad.pth", "--released", "reds")
    assert_one_line_error(result, "bad.pth")
    result = ftvsr(
        "evaluate", "--weights", tmp_path / "bad.pth", "--dataset", tmp_path / "set", "--out", tmp_path / "r"
    )
    assert_one_line_error(result, "bad.pth")


def test_upscale_chunk_and_tile_options(tmp_path, tiny_model):
    clip = tmp_path / "lr" / "clip"
    write_clip(clip, smooth_clip(5, 16, 20))
    options = ["--chunk", "3", "--chunk-overlap", "1", "--tile", "16", "--tile-overlap", "4"]
    result = ftvsr("upscale", clip, tmp_path / "up", "--weights", tiny_model, *options)
    assert result.returncode == 0, result.stderr
    assert read_clip(tmp_path / "up").shape == (5, 64, 80, 3)
    result = ftvsr("upscale", clip, tmp_path / "up2", "--weights", tiny_model, "--chunk", "2")  # default overlap 2
    assert_one_line_error(result, "chunk_overlap < chunk")
