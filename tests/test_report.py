from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ftvsr.data.published_results import PUBLISHED_RESULTS, PublishedResult, lookup
from ftvsr.errors import FTVSRError
from ftvsr.evaluate import write_results
from ftvsr.io.frames import write_frame
from ftvsr.report import (
    MISSING,
    build_report,
    crf_label,
    load_results,
    paper_table,
    rate_distortion_table,
    read_bitrates,
    table_markdown,
)

COLUMNS = ["dataset", "crf", "protocol", "method", "clip", "sequence", "frame", "psnr", "ssim"]


def fake_results(dataset, crf, protocol, ftvsr_psnr, bicubic_psnr, clips=("000", "011"), frames=3):
    """Per-frame rows with known means: psnr alternates +-0.5 around the mean, ssim = psnr / 41."""
    rows = []
    for clip in clips:
        for frame in range(frames):
            wobble = 0.5 if frame % 2 else -0.5
            if frames % 2:  # keep the mean exact with an odd count
                wobble = 0.0 if frame == frames - 1 else wobble
            for method, mean in (("ftvsr", ftvsr_psnr), ("bicubic", bicubic_psnr)):
                rows.append((dataset, crf, protocol, method, clip, clip, frame, mean + wobble, (mean + wobble) / 41))
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.fixture
def results(tmp_path):
    """REDS4 at raw and CRF 25 (published protocol, one folder each) and a `sample` set at CRF 25."""
    reds_raw = fake_results("REDS4", "raw", "published", 31.50, 26.00)
    reds_25 = fake_results("REDS4", "crf25", "published", 28.25, 25.10)
    sample = fake_results("sample", "crf25", "full", 30.00, 27.00, clips=("bbb", "carphone"))
    write_results(reds_raw, tmp_path / "eval" / "REDS4" / "raw")
    return [tmp_path / "eval" / "REDS4" / "raw", reds_25, sample]


@pytest.fixture
def bitrates(tmp_path):
    paths = {}
    for crf, rates in (("crf25", {"000": 400.0, "011": 600.0, "bbb": 100.0, "carphone": 300.0}),):
        table = pd.DataFrame(
            {
                "clip": list(rates),
                "frames": 3,
                "width": 12,
                "height": 8,
                "crf": 25,
                "bytes": 1000,
                "bitrate_kbps": list(rates.values()),
            }
        )
        paths[crf] = tmp_path / "LR" / crf / "bitrate.csv"
        paths[crf].parent.mkdir(parents=True)
        table.to_csv(paths[crf], index=False)
    return paths


@pytest.fixture
def strips_dir(tmp_path):
    """Frames as `evaluate_set(save_frames_dir=...)` saves them, for two CRFs; one lacks ftvsr.png."""
    rng = np.random.default_rng(0)
    root = tmp_path / "strips"
    for dataset, crf, clip, with_ftvsr in (
        ("REDS4", "raw", "000", True),
        ("REDS4", "crf25", "000", True),
        ("REDS4", "crf25", "011", False),
    ):
        folder = root / dataset / crf / clip
        write_frame(folder / "lr.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
        for name in ("bicubic", "gt") + (("ftvsr",) if with_ftvsr else ()):
            write_frame(folder / f"{name}.png", rng.integers(0, 256, (160, 200, 3), dtype=np.uint8))
        (folder / "info.json").write_text(
            json.dumps({"dataset": dataset, "crf": crf, "protocol": "published", "clip": clip, "frame": 12})
        )
    return root


def _is_png(path):
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.format == "PNG" and image.size[0] > 0 and image.size[1] > 0


def test_build_report_writes_everything(tmp_path, results, bitrates, strips_dir):
    out = tmp_path / "report"
    written = build_report(
        results, out, bitrate_tables=bitrates, strips_dir=strips_dir, profile="sample", strip_crop=64
    )
    expected = {
        "results.md",
        "table.md",
        "table.tex",
        "psnr_vs_crf.png",
        "psnr_vs_crf.csv",
        "rate_distortion.png",
        "per_frame_psnr.png",
        "strips/strip_raw.png",
        "strips/strip_crf25.png",
    }
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == expected
    assert {str(p.relative_to(out)) for p in written.values()} == expected
    for name in expected:
        if name.endswith(".png"):
            assert _is_png(out / name), name
    assert not list(out.glob(".*.tmp"))  # no leftovers of atomic writes

    # strips: a header and one row per clip; 4 tiles of the 64-pixel crop side by side
    with Image.open(out / "strips" / "strip_crf25.png") as strip:
        assert strip.size[0] == 4 * 64 + 5 * 4
        assert strip.size[1] == 18 + 2 * (18 + 64 + 4) + 4
    with Image.open(out / "strips" / "strip_raw.png") as strip:
        assert strip.size[1] == 18 + (18 + 64 + 4) + 4


def test_paper_table_numbers_and_missing_cells(results):
    df = load_results(results)
    columns, rows, protocols = paper_table(df)
    assert columns[:8] == [
        ("REDS4", "raw"),
        ("REDS4", "crf15"),
        ("REDS4", "crf25"),
        ("REDS4", "crf35"),
        ("Vid4", "raw"),
        ("Vid4", "crf15"),
        ("Vid4", "crf25"),
        ("Vid4", "crf35"),
    ]
    assert columns[8:] == [("sample", "crf25")]
    assert protocols == {"REDS4": "published", "sample": "full"}
    at = {c: i for i, c in enumerate(columns)}
    assert rows["FTVSR (ours)"][at[("REDS4", "crf25")]] == f"28.25/{28.25 / 41:.4f}"
    assert rows["Bicubic"][at[("REDS4", "raw")]] == f"26.00/{26.0 / 41:.4f}"
    # published values sit beside ours with their delta; a cell we did not evaluate has no delta
    assert rows["FTVSR (published)"][at[("REDS4", "raw")]] == "31.82/0.8960"
    assert rows["Δ ours − published"][at[("REDS4", "raw")]] == f"{31.50 - 31.82:+.2f}/{31.50 / 41 - 0.896:+.4f}"
    assert rows["FTVSR (published)"][at[("REDS4", "crf25")]] == "28.10/0.7860"
    assert rows["Δ ours − published"][at[("REDS4", "crf25")]] == f"{28.25 - 28.10:+.2f}/{28.25 / 41 - 0.786:+.4f}"
    assert rows["FTVSR (published)"][at[("REDS4", "crf15")]] == "30.89/0.8640"
    assert rows["Δ ours − published"][at[("REDS4", "crf15")]] is None
    # Vid4 was not evaluated: every row of its columns is missing
    for name in rows:
        for crf in ("raw", "crf15", "crf25", "crf35"):
            if name == "FTVSR (published)" and lookup("Vid4", crf):
                continue
            assert rows[name][at[("Vid4", crf)]] is None


def test_table_files_content(tmp_path, results):
    out = tmp_path / "report"
    build_report(results, out, profile="paper")
    md = (out / "table.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert header.split(" | ")[1:5] == ["REDS4 Raw", "REDS4 CRF 15", "REDS4 CRF 25", "REDS4 CRF 35"]
    ours = next(line for line in md.splitlines() if line.startswith("| FTVSR (ours)"))
    cells = [c.strip() for c in ours.strip("|").split("|")][1:]
    assert cells[0] == "31.50/0.7683" and cells[2] == "28.25/0.6890"
    assert cells[1] == MISSING and cells[4] == MISSING  # REDS4 CRF 15, Vid4 raw: not evaluated
    assert "paperswithcode" in md and "CAVSR" in md  # the published numbers' sources are stated
    tex = (out / "table.tex").read_text()
    assert tex.startswith(r"\begin{tabular}") and tex.rstrip().endswith(r"\end{tabular}")
    assert r"\multicolumn{4}{c}{REDS4}" in tex and r"\multicolumn{4}{c}{Vid4}" in tex
    assert "31.50/0.7683" in tex and "31.82/0.8960" in tex
    ours_tex = next(line for line in tex.splitlines() if line.startswith("FTVSR (ours)"))
    assert ours_tex.count("--") == 6  # REDS4 CRF 15, 35 and the four Vid4 cells
    assert MISSING not in tex  # LaTeX gets "--", not the unicode dash
    # results.md: CRF x method with the delta vs bicubic
    res = (out / "results.md").read_text()
    assert "profile `paper`" in res
    assert re.search(r"\| CRF 25 \| 25\.10/0\.6122 \| 28\.25/0\.6890 \| \+3\.15 \| \+0\.0768 \|", res)
    assert "no bitrate table" in res and "no saved frames" in res
    # the DVC plots table
    table = pd.read_csv(out / "psnr_vs_crf.csv")
    assert list(table.columns) == ["dataset", "crf", "method", "psnr", "ssim"]
    row = table[(table["dataset"] == "REDS4") & (table["crf"] == "crf25") & (table["method"] == "ftvsr")]
    assert row["psnr"].iloc[0] == pytest.approx(28.25)
    assert list(table[table["dataset"] == "REDS4"]["crf"].unique()) == ["raw", "crf25"]  # raw first


def test_rate_distortion_points(results, bitrates):
    df = load_results(results)
    points = rate_distortion_table(df, read_bitrates(bitrates))
    reds = points[(points["dataset"] == "REDS4") & (points["method"] == "ftvsr")]
    assert list(reds["crf"]) == ["crf25"]  # no bitrate for raw input
    assert reds["bitrate_kbps"].iloc[0] == pytest.approx(500.0)  # mean of the evaluated clips 000 and 011
    sample = points[(points["dataset"] == "sample") & (points["method"] == "bicubic")]
    assert sample["bitrate_kbps"].iloc[0] == pytest.approx(200.0) and sample["psnr"].iloc[0] == pytest.approx(27.0)
    with pytest.raises(FTVSRError, match="bitrate table not found"):
        read_bitrates({"crf35": "nowhere/bitrate.csv"})


def test_published_results_are_sourced_data():
    assert all(r.source and r.psnr > 0 for r in PUBLISHED_RESULTS)
    assert lookup("reds4", "RAW").psnr == pytest.approx(31.82)
    assert lookup("REDS4", 25) is lookup("REDS4", "25") is lookup("REDS4", "crf25") is not None
    assert lookup("REDS4", "crf30") is None and lookup("Vid4", "raw", method="BasicVSR") is None
    assert {(r.dataset, r.crf) for r in PUBLISHED_RESULTS} == {
        (d, c) for d in ("REDS4", "Vid4") for c in ("raw", "crf15", "crf25", "crf35")
    }
    custom = (PublishedResult("Vid4", "crf25", "FTVSR", 26.0, None, "test", "Vimeo-90K"),)
    assert lookup("vid4", "crf25", results=custom).psnr == 26.0


def test_inputs_are_checked(results):
    with pytest.raises(FTVSRError, match="no evaluation results"):
        build_report([], "unused", profile="sample")
    with pytest.raises(FTVSRError, match="same frame appears in two results"):
        load_results([results[1], results[1]])
    with pytest.raises(FTVSRError, match="no per-frame results"):
        load_results(["/nonexistent/eval"])
    assert [crf_label(x) for x in ("raw", "CRF25", 15, "crf35")] == ["raw", "crf25", "crf15", "crf35"]


def test_report_from_a_real_evaluation(tmp_path):
    """evaluate_set (bicubic, saved frames) -> write_results -> build_report, on a tiny synthetic set."""
    from ftvsr.data.imresize import imresize
    from ftvsr.evaluate import evaluate_set
    from ftvsr.io.frames import write_clip

    rng = np.random.default_rng(3)
    gt = np.stack([imresize(rng.random((5, 5, 3)), output_shape=(32, 48)) for _ in range(3)])
    gt = np.clip(gt * 255, 0, 255).round().astype(np.uint8)
    write_clip(tmp_path / "HR" / "carphone", gt)
    write_clip(tmp_path / "LR" / "raw" / "carphone", np.stack([imresize(f, 0.25) for f in gt]))
    frames = evaluate_set(
        tmp_path / "LR" / "raw",
        tmp_path / "HR",
        methods=("bicubic",),
        dataset="sample",
        crf="raw",
        save_frames_dir=tmp_path / "strips" / "raw",
        progress=False,
    )
    write_results(frames, tmp_path / "eval" / "raw")
    build_report([tmp_path / "eval" / "raw"], tmp_path / "report", strips_dir=tmp_path / "strips", profile="sample")
    with Image.open(tmp_path / "report" / "strips" / "strip_raw.png") as strip:
        assert strip.size == (4 * 48 + 5 * 4, 18 + 18 + 32 + 4 + 4)  # the 128-pixel crop is limited to the 48x32 frame
        pixels = np.asarray(strip.convert("RGB"))
    # the GT tile (4th column) is the centre crop of the saved GT frame
    np.testing.assert_array_equal(pixels[36:68, 4 + 3 * 52 : 4 + 3 * 52 + 48], gt[1])
    md = (tmp_path / "report" / "results.md").read_text()
    assert f"{frames['psnr'].mean():.2f}/{frames['ssim'].mean():.4f}" in md


def test_delta_only_where_the_published_model_has_our_training_set():
    rows = [
        dict(dataset=d, crf="raw", protocol="published", method=m, clip="c", sequence="c", frame=0, psnr=30.0, ssim=0.9)
        for d in ("REDS4", "Vid4")
        for m in ("bicubic", "ftvsr")
    ]
    df = pd.DataFrame(rows)
    delta = {
        trained_on: paper_table(df, trained_on=trained_on)[1]["Δ ours − published"]
        for trained_on in ("REDS", "Vimeo-90K")
    }
    assert delta["REDS"][0] == "-1.82/+0.0040" and delta["REDS"][4] is None  # Vid4 published: Vimeo-90K model
    assert delta["Vimeo-90K"][0] is None and delta["Vimeo-90K"][4] is not None
    assert "Vid4: ours is trained on REDS" in table_markdown(df, trained_on="REDS")
    vimeo = table_markdown(df, trained_on="Vimeo-90K")
    assert "REDS4: ours is trained on Vimeo-90K" in vimeo and "Vid4: ours" not in vimeo
