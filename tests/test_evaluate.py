from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ftvsr.compare import EvalSet, compare_models
from ftvsr.data.imresize import imresize
from ftvsr.errors import FTVSRError
from ftvsr.evaluate import METHODS, evaluate_level, evaluate_set, lanczos_upsample
from ftvsr.inference import super_resolve
from ftvsr.io.frames import read_frame, write_clip
from ftvsr.io.video import ffmpeg_exe
from ftvsr.metrics import psnr, ssim
from ftvsr.params import EvaluateSettings
from ftvsr.protocols import resolve_protocol
from ftvsr.results import ALL_CLIPS, FRAME_COLUMNS, metrics_dict, read_results, summarize, write_results


class GlobalMeanUpsampler(nn.Module):
    """Stand-in network: bilinear x4 plus a shift that depends on the whole input clip.

    Because the shift depends on every pixel of every frame, the output tells whether the clip
    was processed whole, or as separate 2x2 crops. It records the shapes it was called with.
    """

    def __init__(self, factor: int = 4):
        super().__init__()
        self.factor = factor
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, t, 3, h, w) -> (n, t, 3, 4h, 4w)
        self.calls.append(tuple(x.shape))
        n, t, c, h, w = x.shape
        up = F.interpolate(x.reshape(n * t, c, h, w), scale_factor=self.factor, mode="bilinear", align_corners=False)
        return up.reshape(n, t, c, h * self.factor, w * self.factor) + 0.5 * (x.mean() - 0.5)


def _smooth_frames(rng, t: int, h: int, w: int) -> np.ndarray:
    base = rng.random((t, h // 4 + 1, w // 4 + 1, 3))
    frames = [imresize(b, output_shape=(h, w)) for b in base]
    return np.clip(np.stack(frames) * 255, 0, 255).round().astype(np.uint8)


def make_set(root: Path, clips: dict[str, int], lr_size=(8, 12), seed: int = 0) -> tuple[Path, Path]:
    """A test set: HR/<clip>/0000000k.png and LR/raw/<clip>/... (MATLAB bicubic / 4)."""
    rng = np.random.default_rng(seed)
    h, w = lr_size
    for clip, t in clips.items():
        gt = _smooth_frames(rng, t, 4 * h, 4 * w)
        write_clip(root / "HR" / clip, gt)
        write_clip(root / "LR" / "raw" / clip, np.stack([imresize(f, 0.25) for f in gt]))
    return root / "LR" / "raw", root / "HR"


@pytest.fixture
def small_set(tmp_path):
    return make_set(tmp_path, {"000": 3, "011": 2})


# --------------------------------------------------------------------------- evaluate_set


def test_full_protocol_rows_and_bicubic_values(small_set):
    lq_dir, gt_dir = small_set
    model = GlobalMeanUpsampler()
    df = evaluate_set(lq_dir, gt_dir, model=model, dataset="sample", crf="raw", progress=False)
    assert list(df.columns) == ["dataset", "crf", "protocol", "method", "clip", "sequence", "frame", "psnr", "ssim"]
    assert len(df) == 3 * (3 + 2)
    assert list(dict.fromkeys(df["method"])) == ["bicubic", "lanczos", "ftvsr"] == list(METHODS)
    assert set(df["protocol"]) == {"full"} and set(df["dataset"]) == {"sample"} and set(df["crf"]) == {"raw"}
    assert sorted(df[df["method"] == "ftvsr"]["clip"].unique()) == ["000", "011"]
    # the network saw each clip whole, once
    assert model.calls == [(1, 3, 3, 8, 12), (1, 2, 3, 8, 12)]
    # bicubic rows are MATLAB bicubic x4 of the LR frame, scored in RGB
    lr = read_frame(lq_dir / "011" / "00000001.png")
    gt = read_frame(gt_dir / "011" / "00000001.png")
    row = df[(df["method"] == "bicubic") & (df["clip"] == "011") & (df["frame"] == 1)].iloc[0]
    up = imresize(lr, 4)
    assert row["psnr"] == pytest.approx(psnr(gt, up))
    assert row["ssim"] == pytest.approx(ssim(gt, up))
    # FTVSR rows differ from the bicubic ones (a different method was really run)
    assert not np.allclose(df[df["method"] == "ftvsr"]["psnr"].values, df[df["method"] == "bicubic"]["psnr"].values)


def test_evaluate_level_runs_the_model_in_the_settings_windows(small_set, tmp_path):
    lq_dir, gt_dir = small_set
    windows = EvaluateSettings(chunk=2, chunk_overlap=0)
    model = GlobalMeanUpsampler()
    df = evaluate_level(lq_dir, gt_dir, tmp_path / "out", model=model, dataset="sample", crf="raw", settings=windows)
    # clip 000 (3 frames) in windows [0, 2) and [2, 3); clip 011 (2 frames) whole
    assert model.calls == [(1, 2, 3, 8, 12), (1, 1, 3, 8, 12), (1, 2, 3, 8, 12)]
    lq = np.stack([read_frame(p) for p in sorted((lq_dir / "000").glob("*.png"))])
    gt = np.stack([read_frame(p) for p in sorted((gt_dir / "000").glob("*.png"))])
    expected = super_resolve(GlobalMeanUpsampler(), lq, chunk=2, chunk_overlap=0)
    scored = df[(df["method"] == "ftvsr") & (df["clip"] == "000")].sort_values("frame")["psnr"].to_numpy()
    assert scored == pytest.approx([psnr(g, e) for g, e in zip(gt, expected, strict=True)])
    whole = super_resolve(GlobalMeanUpsampler(), lq)
    assert not np.allclose(scored, [psnr(g, e) for g, e in zip(gt, whole, strict=True)])


def test_bicubic_only_needs_no_model(small_set):
    df = evaluate_set(*small_set, methods=("bicubic",), dataset="sample", crf="raw", progress=False)
    assert set(df["method"]) == {"bicubic"}
    df = evaluate_set(*small_set, methods=("bicubic", "lanczos"), dataset="sample", crf="raw", progress=False)
    assert set(df["method"]) == {"bicubic", "lanczos"}
    with pytest.raises(FTVSRError, match="needs a model"):
        evaluate_set(*small_set, dataset="sample", crf="raw", progress=False)
    with pytest.raises(FTVSRError, match="unknown evaluation methods"):
        evaluate_set(*small_set, methods=("nearest",), dataset="sample", crf="raw", progress=False)


def test_vid4_defaults_to_y_channel(small_set):
    df = evaluate_set(*small_set, methods=("bicubic",), dataset="Vid4", crf="raw", progress=False)
    lq_dir, gt_dir = small_set
    up = imresize(read_frame(lq_dir / "000" / "00000000.png"), 4)
    gt = read_frame(gt_dir / "000" / "00000000.png")
    row = df[(df["clip"] == "000") & (df["frame"] == 0)].iloc[0]
    assert row["psnr"] == pytest.approx(psnr(gt, up, convert_to_y=True))
    rgb = evaluate_set(*small_set, methods=("bicubic",), dataset="Vid4", crf="raw", convert_to_y=False, progress=False)
    assert rgb.iloc[0]["psnr"] == pytest.approx(psnr(gt, up))


def _lanczos_weights(n_in: int, a: int) -> np.ndarray:
    """(4 n_in, n_in) weights of x4 Lanczos-`a` along one axis, written from the kernel's definition.

    Output pixel i is centred at (i + 0.5) / 4 - 0.5 in input pixels; kernel sinc(x) sinc(x / a)
    for |x| < a; taps outside the frame are dropped and the others renormalised.
    """
    centre = (np.arange(4 * n_in) + 0.5) / 4 - 0.5
    distance = np.arange(n_in)[None, :] - centre[:, None]
    weights = np.where(np.abs(distance) < a, np.sinc(distance) * np.sinc(distance / a), 0.0)
    return weights / weights.sum(axis=1, keepdims=True)


def _lanczos_reference(frame: np.ndarray, a: int = 3) -> np.ndarray:
    """x4 Lanczos-`a` of a uint8 (h, w, 3) frame: along rows, rounded to uint8, then along columns.

    The rounding between the passes is Pillow's (8-bit images stay 8-bit in between); without it
    the result still differs only by rounding, but by more than the one level allowed below.
    """
    h, w = frame.shape[:2]
    rows = np.einsum("hwc,xw->hxc", frame.astype(np.float64), _lanczos_weights(w, a))
    rows = np.clip(np.rint(rows), 0, 255)
    out = np.einsum("yh,hxc->yxc", _lanczos_weights(h, a), rows)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_lanczos_is_lanczos_3(tmp_path):
    lq_dir, gt_dir = make_set(tmp_path, {"000": 2}, lr_size=(12, 16))
    noise = np.random.default_rng(7).integers(0, 256, (2, 12, 16, 3), dtype=np.uint8)  # where kernels differ most
    write_clip(lq_dir / "000", noise)
    strips = tmp_path / "strips"
    df = evaluate_set(
        lq_dir,
        gt_dir,
        methods=("lanczos",),
        dataset="sample",
        crf="raw",
        save_frames_dir=strips,
        save_frame_index=1,
        progress=False,
    )
    ours = read_frame(strips / "000" / "lanczos.png")
    difference = np.abs(ours.astype(int) - _lanczos_reference(noise[1]))
    assert difference.max() <= 1 and np.mean(difference > 0) < 0.001  # the same up to fixed-point rounding
    for a in (2, 4):  # the reference tells the window apart
        assert np.abs(ours.astype(int) - _lanczos_reference(noise[1], a)).max() > 10
    np.testing.assert_array_equal(lanczos_upsample(noise)[1], ours)
    row = df[df["frame"] == 1].iloc[0]
    assert row["method"] == "lanczos" and row["psnr"] == pytest.approx(
        psnr(read_frame(gt_dir / "000" / "00000001.png"), ours)
    )


def _ffmpeg_scale(frame: np.ndarray, flags: str) -> np.ndarray:
    """ffmpeg's `scale=iw*4:ih*4:flags=<flags>` of an RGB frame, rgb24 in and out (no YUV conversion)."""
    h, w = frame.shape[:2]
    command = [ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "-"]
    command += ["-vf", f"scale=iw*4:ih*4:flags={flags}", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    done = subprocess.run(command, input=frame.tobytes(), capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.uint8).reshape(4 * h, 4 * w, 3)


def test_lanczos_is_what_ffmpeg_users_get():
    """ffmpeg's lanczos scaler (what a user would otherwise run) differs from ours in rounding and at
    the edges only: far closer than its bicubic or spline scalers (docs/evaluation.md has the numbers)."""
    detail = imresize(np.random.default_rng(1).random((12, 16, 3)), output_shape=(24, 32))  # 2-pixel detail
    frame = np.clip(detail * 255, 0, 255).round().astype(np.uint8)
    ours = lanczos_upsample(frame[None])[0]
    close = psnr(_ffmpeg_scale(frame, "lanczos"), ours)  # 51.5 dB
    assert close > 48
    for other in ("bicubic", "spline"):  # 40.3 and 45.2 dB
        assert psnr(_ffmpeg_scale(frame, other), ours) < close - 4, other


def test_published_protocol_reds4(tmp_path):
    lq_dir, gt_dir = make_set(tmp_path, {"000": 27, "011": 26})
    model = GlobalMeanUpsampler()
    df = evaluate_set(
        lq_dir, gt_dir, model=model, dataset="REDS4", crf="crf25", protocol="published", start_frame=1, progress=False
    )
    # 2x2 crops named <clip>_<i>_<j>, 25 frames each starting at the start index
    assert sorted(df["clip"].unique()) == [f"{c}_{i}_{j}" for c in ("000", "011") for i in (0, 1) for j in (0, 1)]
    for _, rows in df.groupby(["method", "clip"]):
        assert list(rows["frame"]) == list(range(1, 26))
    # the network saw each crop (4x6 LR) as a separate 25-frame clip
    assert model.calls == [(1, 25, 3, 4, 6)] * 8
    # crop (1, 0) = bottom-left quarter: bicubic of the LR crop, RGB, against the GT crop
    k = 7
    lr = read_frame(lq_dir / "011" / f"{k:08d}.png")[4:8, 0:6]
    gt = read_frame(gt_dir / "011" / f"{k:08d}.png")[16:32, 0:24]
    row = df[(df["method"] == "bicubic") & (df["clip"] == "011_1_0") & (df["frame"] == k)].iloc[0]
    assert row["sequence"] == "011"
    assert row["psnr"] == pytest.approx(psnr(gt, imresize(lr, 4)))
    assert row["ssim"] == pytest.approx(ssim(gt, imresize(lr, 4)))
    # combined as the published code: frame mean per crop, then mean over the 8 crops
    overall = summarize(df)
    ours = overall[(overall["clip"] == ALL_CLIPS) & (overall["method"] == "ftvsr")].iloc[0]
    per_crop = df[df["method"] == "ftvsr"].groupby("clip")["psnr"].mean()
    assert ours["psnr"] == pytest.approx(per_crop.mean()) and ours["frames"] == 8 * 25


def test_published_protocol_vid4_all_frames_on_y(tmp_path):
    lq_dir, gt_dir = make_set(tmp_path, {"calendar": 3, "city": 4})
    df = evaluate_set(
        lq_dir, gt_dir, methods=("bicubic",), dataset="Vid4", crf="raw", protocol="published", progress=False
    )
    assert df.groupby("clip").size().to_dict() == {
        **{f"calendar_{i}_{j}": 3 for i in (0, 1) for j in (0, 1)},
        **{f"city_{i}_{j}": 4 for i in (0, 1) for j in (0, 1)},
    }
    lr = read_frame(lq_dir / "city" / "00000002.png")[0:4, 6:12]
    gt = read_frame(gt_dir / "city" / "00000002.png")[0:16, 24:48]
    row = df[(df["clip"] == "city_0_1") & (df["frame"] == 2)].iloc[0]
    assert row["psnr"] == pytest.approx(psnr(gt, imresize(lr, 4), convert_to_y=True))


def test_protocol_settings():
    reds = resolve_protocol("published", "REDS4")
    settings = (reds.convert_to_y, reds.crop_border, reds.start_frame, reds.test_frames, reds.split_2x2)
    assert settings == (False, 0, 0, 25, True)
    vid4 = resolve_protocol("published", "vid4")
    assert (vid4.convert_to_y, vid4.test_frames, vid4.split_2x2) == (True, None, True)
    assert resolve_protocol("full", "REDS4").test_frames is None
    with pytest.raises(FTVSRError, match="REDS4 and Vid4 only"):
        resolve_protocol("published", "sample")
    with pytest.raises(FTVSRError, match="unknown evaluation protocol"):
        resolve_protocol("paper", "REDS4")


def test_published_protocol_needs_enough_frames(small_set):
    with pytest.raises(FTVSRError, match=re.escape("needs frames 0..24")):
        evaluate_set(*small_set, methods=("bicubic",), dataset="REDS4", crf="raw", protocol="published", progress=False)


# --------------------------------------------------------------------------- input errors


def test_missing_gt_frame(small_set):
    lq_dir, gt_dir = small_set
    (gt_dir / "000" / "00000001.png").unlink()
    with pytest.raises(FTVSRError, match=r"GT frame missing: .*000.*00000001\.png"):
        evaluate_set(lq_dir, gt_dir, methods=("bicubic",), dataset="s", crf="raw", progress=False)


def test_gt_frame_without_lr(small_set):
    lq_dir, gt_dir = small_set
    (lq_dir / "011" / "00000001.png").unlink()
    with pytest.raises(FTVSRError, match="GT frame without LR input"):
        evaluate_set(lq_dir, gt_dir, methods=("bicubic",), dataset="s", crf="raw", progress=False)


def test_missing_gt_clip(small_set):
    lq_dir, gt_dir = small_set
    import shutil

    shutil.rmtree(gt_dir / "011")
    with pytest.raises(FTVSRError, match="ground truth clip folder missing"):
        evaluate_set(lq_dir, gt_dir, methods=("bicubic",), dataset="s", crf="raw", progress=False)


def test_empty_clip(small_set):
    lq_dir, gt_dir = small_set
    (lq_dir / "022").mkdir()
    (gt_dir / "022").mkdir()
    with pytest.raises(FTVSRError, match="no frames"):
        evaluate_set(lq_dir, gt_dir, methods=("bicubic",), dataset="s", crf="raw", progress=False)


def test_gt_of_wrong_size(tmp_path):
    lq_dir, gt_dir = make_set(tmp_path, {"000": 2})
    write_clip(gt_dir / "000", np.zeros((2, 30, 48, 3), np.uint8))
    with pytest.raises(FTVSRError, match="expected 4x the LR size"):
        evaluate_set(lq_dir, gt_dir, methods=("bicubic",), dataset="s", crf="raw", progress=False)


def test_prediction_of_wrong_length(small_set, monkeypatch):
    import ftvsr.inference

    real = ftvsr.inference.super_resolve
    monkeypatch.setattr(ftvsr.inference, "super_resolve", lambda model, frames, **kw: real(model, frames, **kw)[:-1])
    with pytest.raises(FTVSRError, match=r"ftvsr output for 000 has shape \(2, 32, 48, 3\) .* has \(3, 32, 48, 3\)"):
        evaluate_set(
            *small_set, model=GlobalMeanUpsampler(), methods=("ftvsr",), dataset="s", crf="raw", progress=False
        )


# --------------------------------------------------------------------------- saved frames


def test_save_frames_for_strips(tmp_path):
    lq_dir, gt_dir = make_set(tmp_path, {"000": 25, "011": 25})
    out = tmp_path / "strips" / "REDS4" / "crf25"
    evaluate_set(
        lq_dir,
        gt_dir,
        model=GlobalMeanUpsampler(),
        dataset="REDS4",
        crf="crf25",
        protocol="published",
        save_frames_dir=out,
        save_frame_index=3,
        progress=False,
    )
    for clip in ("000", "011"):
        files = sorted(p.name for p in (out / clip).iterdir())
        assert files == ["bicubic.png", "ftvsr.png", "gt.png", "info.json", "lanczos.png", "lr.png"]
        info = json.loads((out / clip / "info.json").read_text())
        assert info == {
            "dataset": "REDS4",
            "crf": "crf25",
            "protocol": "published",
            "clip": clip,
            "frame": 3,
            "frame_name": "00000003.png",
        }
        # crops are stitched back into whole frames
        assert read_frame(out / clip / "ftvsr.png").shape == (32, 48, 3)
        np.testing.assert_array_equal(read_frame(out / clip / "gt.png"), read_frame(gt_dir / clip / "00000003.png"))
        np.testing.assert_array_equal(read_frame(out / clip / "lr.png"), read_frame(lq_dir / clip / "00000003.png"))
    # an index past a clip's end shows its last frame (a display choice, not an error)
    evaluate_set(
        lq_dir,
        gt_dir,
        methods=("bicubic",),
        dataset="s",
        crf="raw",
        save_frames_dir=tmp_path / "late",
        save_frame_index=30,
        progress=False,
    )
    last = sorted(p.name for p in (gt_dir / "000").iterdir())[-1]
    assert json.loads((tmp_path / "late" / "000" / "info.json").read_text())["frame_name"] == last


# --------------------------------------------------------------------------- summaries and files


def _frames(rows):
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)


def test_summary_weights_clips_equally():
    df = _frames(
        [
            ("d", "raw", "full", "ftvsr", "a", "a", 0, 10.0, 0.5),
            ("d", "raw", "full", "ftvsr", "b", "b", 0, 20.0, 0.7),
            ("d", "raw", "full", "ftvsr", "b", "b", 1, 20.0, 0.7),
            ("d", "raw", "full", "ftvsr", "b", "b", 2, 20.0, 0.7),
        ]
    )
    summary = summarize(df)
    overall = summary[summary["clip"] == ALL_CLIPS].iloc[0]
    assert overall["psnr"] == pytest.approx(15.0) and overall["ssim"] == pytest.approx(0.6)
    assert overall["frames"] == 4
    assert summary[summary["clip"] == "b"].iloc[0]["frames"] == 3
    with pytest.raises(FTVSRError, match="empty"):
        summarize(df.iloc[:0])
    with pytest.raises(FTVSRError, match="lack the columns"):
        summarize(df.drop(columns="psnr"))


def test_write_results_and_metrics_json(small_set, tmp_path):
    df = evaluate_set(*small_set, model=GlobalMeanUpsampler(), dataset="sample", crf="crf25", progress=False)
    paths = write_results(df, tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"frames.csv", "clips.csv", "metrics.json"}
    metrics = json.loads(paths["metrics"].read_text())
    assert set(metrics) == {
        *("bicubic", "lanczos", "ftvsr"),
        *("delta_psnr", "delta_ssim", "delta_psnr_lanczos", "delta_ssim_lanczos"),
    }
    means = summarize(df)
    ftvsr, bic, lanczos = (
        means[(means["clip"] == ALL_CLIPS) & (means["method"] == m)].iloc[0] for m in ("ftvsr", "bicubic", "lanczos")
    )
    assert metrics["ftvsr"]["psnr"] == pytest.approx(ftvsr["psnr"])
    assert metrics["delta_psnr"] == pytest.approx(ftvsr["psnr"] - bic["psnr"])  # Δ vs bicubic keeps its name
    assert metrics["delta_ssim"] == pytest.approx(ftvsr["ssim"] - bic["ssim"])
    assert metrics["delta_psnr_lanczos"] == pytest.approx(ftvsr["psnr"] - lanczos["psnr"])
    assert metrics["delta_ssim_lanczos"] == pytest.approx(ftvsr["ssim"] - lanczos["ssim"])
    back = read_results(tmp_path / "out")
    assert sorted(back["clip"].unique()) == ["000", "011"]  # clip names stay text
    assert np.allclose(back["psnr"], df["psnr"], atol=1e-5)
    clips = pd.read_csv(paths["clips"], dtype={"clip": str})
    assert set(clips["clip"]) == {"000", "011", ALL_CLIPS}
    # several evaluations in one table: one block per dataset/crf
    both = pd.concat([df, df.assign(crf="crf35")])
    assert set(metrics_dict(both)) == {"sample/crf25", "sample/crf35"}


# --------------------------------------------------------------------------- MLflow and comparisons


def test_compare_checkpoints(tmp_path):
    from ftvsr.models import FTVSR, save_model

    lq_dir, gt_dir = make_set(tmp_path, {"000": 2}, lr_size=(16, 16))
    torch.manual_seed(0)
    paths = []
    for name, zero in (("zero_heads", True), ("random_heads", False)):
        model = FTVSR(
            mid_channels=4,
            num_blocks=1,
            d_model=64,
            n_heads=1,
            ftt_channels=64,
            flow="zero",
            hf_once=True,
            zero_init_heads=zero,
        )
        paths.append(save_model(model, tmp_path / f"{name}.pt"))
    table = compare_models(paths, [EvalSet("sample", "raw", lq_dir, gt_dir)])
    assert list(table["model"]) == ["zero_heads", "random_heads"]
    assert table["psnr"].notna().all() and table.iloc[0]["psnr"] != table.iloc[1]["psnr"]
    base = evaluate_set(lq_dir, gt_dir, methods=("bicubic", "lanczos"), dataset="sample", crf="raw", progress=False)
    means = base.groupby("method")["psnr"].mean()  # one clip: the frame mean is the set mean
    assert table.iloc[0]["delta_psnr"] == pytest.approx(table.iloc[0]["psnr"] - means["bicubic"])
    assert table.iloc[0]["delta_psnr_lanczos"] == pytest.approx(table.iloc[0]["psnr"] - means["lanczos"])


def test_compare_runs_checkpoints_in_the_given_windows(tmp_path):
    from ftvsr.models import FTVSR, load_model, save_model

    lq_dir, gt_dir = make_set(tmp_path, {"000": 4}, lr_size=(16, 16))
    torch.manual_seed(0)
    model = FTVSR(mid_channels=4, num_blocks=1, d_model=64, n_heads=1, ftt_channels=64, flow="zero", hf_once=True)
    path = save_model(model, tmp_path / "random_heads.pt")
    windows = dict(chunk=2, chunk_overlap=0)
    table = compare_models([path], [EvalSet("sample", "raw", lq_dir, gt_dir)], **windows)
    scored = {}
    for name, options in (("windows", windows), ("one pass", {})):
        frames = evaluate_set(
            lq_dir, gt_dir, model=load_model(path), methods=("ftvsr",), dataset="s", crf="raw", **options
        )
        scored[name] = frames["psnr"].mean()
    assert table.iloc[0]["psnr"] == pytest.approx(scored["windows"])
    assert scored["windows"] != pytest.approx(scored["one pass"])
