"""The paper path under `dvc repro`, on stand-in archives in the publishers' exact layouts
(tests/standins.py) served on 127.0.0.1 through FTVSR_MIRROR: both paper profiles as shipped,
but for the smoke-test overrides below (widths, iterations, frame counts; docs/paper.md gives the
same command for a cluster), one after the other in one project.

Checked: REDS4 kept out of training; REDS' own X4 frames as raw LR; REDS4 scored on RGB in the
published 2x2 crops and `test_frames`; Vid4 on Y from BD inputs; every (dataset, level) cell in
the tables with the published rows beside ours and a Δ only where the training sets match; a
second `dvc repro` does nothing; switching profiles leaves the other's outputs untouched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dvc_project import dvc, project_copy
from standins import Mirror, reds_archives, vid4_archive, vimeo_archive

from ftvsr.data.degrade import bd_degrade
from ftvsr.evaluate import bicubic_upsample
from ftvsr.io.frames import list_frames, read_clip, read_frame
from ftvsr.metrics import psnr

pytestmark = pytest.mark.slow

LEVELS = ("raw", "15", "25", "35")
VID4_CLIPS = ("calendar", "city")
# What a smoke test overrides: the network's widths, the iteration counts, the frame counts. SPyNet
# is left out (no pretrained weights: random flow weights), as it cannot be fetched offline.
SMOKE = [
    "model.mid_channels=8",
    "model.num_blocks=1",
    "model.d_model=64",
    "model.n_heads=2",
    "model.ftt_channels=64",
    "train.iterations=2",
    "train.fix_iter=1",
    "train.num_frames=3",
    "train.gt_patch_size=64",
    "train.spynet_weights=null",
    "evaluate.test_frames=2",
]
SMOKE_REDS = [*SMOKE, "train.fix_ttvsr=1"]


def _profile(project: Path, name: str, overrides: list[str]) -> None:
    ftvsr = Path(sys.executable).with_name("ftvsr")
    command = [str(ftvsr), "profile", name, *(f"--set={item}" for item in overrides)]
    subprocess.run(command, cwd=project, check=True, capture_output=True)


# The profiles leave torch's thread count to torch (all cores): on cores shared with pytest, the
# Prefect server and the mirror, two threads per stage spin against each other (30 s instead of 3 s
# for one evaluation), so the stages run one thread each here, as `OMP_NUM_THREADS=1` does anywhere.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _repro(project: Path, mirror: Mirror, api_url: str) -> subprocess.CompletedProcess:
    result = dvc(project, "repro", api_url=api_url, env={**mirror.env, **ONE_THREAD})
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return result


def _frames(project: Path, profile: str, dataset: str, level: str) -> pd.DataFrame:
    return pd.read_csv(project / "results" / profile / dataset / level / "frames.csv", dtype={"crf": str})


def _table_cells(table: str, row: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {row} |"))
    return [cell.strip() for cell in line.strip("|").split("|")[1:]]


def _check_vid4_on_y_from_bd(project: Path, profile: str) -> None:
    data = project / "data" / profile
    for clip in VID4_CLIPS:
        hr = read_clip(data / "hr/test/vid4" / clip)
        lr = read_clip(data / "lr/raw/test/vid4" / clip)
        np.testing.assert_array_equal(lr, np.stack([bd_degrade(frame) for frame in hr]))
    frames = _frames(project, profile, "vid4", "raw")
    row = frames[(frames["method"] == "bicubic") & (frames["clip"] == "calendar_0_0") & (frames["frame"] == 0)].iloc[0]
    lr = read_frame(list_frames(data / "lr/raw/test/vid4/calendar")[0])
    gt = read_frame(list_frames(data / "hr/test/vid4/calendar")[0])
    h, w = lr.shape[0] // 2, lr.shape[1] // 2
    crop = bicubic_upsample(lr[None, :h, :w])[0]
    assert row.psnr == pytest.approx(psnr(gt[: 4 * h, : 4 * w], crop, 0, convert_to_y=True), abs=1e-5)
    assert row.psnr != pytest.approx(psnr(gt[: 4 * h, : 4 * w], crop, 0, convert_to_y=False), abs=1e-3)


def test_both_paper_profiles_under_dvc_repro_on_stand_in_archives(tmp_path, prefect_api_url):
    project = project_copy(tmp_path / "project", "sample", {})
    # Frame counts kept small: 4 per REDS clip (REDS4 scored on 2, `test_frames`), 3 per Vid4 clip,
    # two Vid4 clips of two sizes; the layouts are the publishers' in full.
    archives = {**reds_archives(frames=4), **vid4_archive(clips=VID4_CLIPS, frames=3), **vimeo_archive()}
    with Mirror(archives) as mirror:
        # ---- profile paper: REDS, REDS4 and Vid4
        _profile(project, "paper", SMOKE_REDS)
        first = _repro(project, mirror, prefect_api_url)
        for stage in ("fetch", "degrade", "compress@35", "pack", "train", "evaluate@reds4-raw", "evaluate@vid4-35"):
            assert f"Running stage '{stage}'" in first.stdout
        data = project / "data/paper"
        hr_clips = (data / "lmdb/hr.lmdb/meta_info.txt").read_text()
        trained = {line.split("/")[0].split()[0] for line in hr_clips.splitlines() if line.strip()}
        assert trained == {"001", "002", "100", "240", "241"}  # REDS4 left out; validation clips as 240+
        for clip in ("001", "000"):  # raw LR: REDS' own X4 frames, for training and REDS4 alike
            folder = "train" if clip == "001" else "test/reds4"
            given = data / "downloads/REDS/train/train_sharp_bicubic/X4" / clip / "00000002.png"
            assert (data / "lr/raw" / folder / clip / "00000002.png").read_bytes() == given.read_bytes()

        reds4 = _frames(project, "paper", "reds4", "25")
        assert set(reds4["protocol"]) == {"published"}
        crops = {f"{clip}_{i}_{j}" for clip in ("000", "011", "015", "020") for i in (0, 1) for j in (0, 1)}
        assert set(reds4["clip"]) == crops
        assert reds4.groupby(["method", "clip"])["frame"].apply(lambda f: sorted(f) == [0, 1]).all()  # test_frames
        row = reds4[(reds4["method"] == "bicubic") & (reds4["clip"] == "011_1_0") & (reds4["frame"] == 1)].iloc[0]
        lr = read_frame(data / "lr/25/test/reds4/011/00000001.png")
        gt = read_frame(data / "hr/test/reds4/011/00000001.png")
        h, w = lr.shape[0] // 2, lr.shape[1] // 2
        crop = bicubic_upsample(lr[None, h:, :w])[0]
        assert row.psnr == pytest.approx(psnr(gt[4 * h :, : 4 * w], crop, 0, convert_to_y=False), abs=1e-5)  # RGB
        _check_vid4_on_y_from_bd(project, "paper")

        table = (project / "reports/paper/table.md").read_text()
        columns = _table_cells(table, "Method")
        expected = [f"{d} {t}" for d in ("REDS4", "Vid4") for t in ("Raw", "CRF 15", "CRF 25", "CRF 35")]
        assert columns[:8] == expected
        for row_name in ("Bicubic", "FTVSR (ours)", "FTVSR (published)"):
            assert "–" not in _table_cells(table, row_name)[:8], row_name
        delta = _table_cells(table, "Δ ours − published")
        assert "–" not in delta[:4] and delta[4:8] == ["–"] * 4  # Vid4: trained on REDS, published on Vimeo-90K
        assert "Vid4: no Δ ours − published: the published numbers differ from ours in training set (ours REDS" in table

        again = dvc(project, "repro", api_url=prefect_api_url, env={**mirror.env, **ONE_THREAD})
        assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout[-3000:]
        paper_model = (project / "models/paper/ftvsr.pth").stat()

        # ---- profile paper-vimeo: Vimeo-90K septuplets, Vid4
        _profile(project, "paper-vimeo", SMOKE)
        _repro(project, mirror, prefect_api_url)
        vimeo = project / "data/paper-vimeo"
        clips = {
            line.split("/")[0].split()[0] for line in (vimeo / "lmdb/hr.lmdb/meta_info.txt").read_text().splitlines()
        }
        assert clips == {"00001_0001", "00001_0266", "00002_0010"}  # sep_trainlist.txt only
        _check_vid4_on_y_from_bd(project, "paper-vimeo")
        table = (project / "reports/paper-vimeo/table.md").read_text()
        assert "–" not in _table_cells(table, "Δ ours − published")[4:8]  # the paper's own Vid4 comparison
        assert "no Δ" not in table  # same training set, degradation (BD) and channel (Y) as published
        for level in LEVELS:
            assert (project / "results/paper-vimeo/vid4" / level / "metrics.json").is_file()

        # no untracked data after a paper run: DVC tracks the outputs, git ignores the downloads
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"], cwd=project, capture_output=True, text=True
        ).stdout
        assert not [line for line in status.splitlines() if line.startswith("?? data/")], status

        # the other profile's outputs and checkpoints are untouched
        assert (project / "models/paper/ftvsr.pth").stat().st_mtime_ns == paper_model.st_mtime_ns
        assert list((project / "checkpoints/paper").iterdir())
        assert (project / "reports/paper/table.md").is_file()
