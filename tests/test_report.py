from __future__ import annotations

import json
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from ftvsr.data.published_results import PUBLISHED_RESULTS, PublishedResult, lookup
from ftvsr.errors import FTVSRError
from ftvsr.io.frames import write_frame
from ftvsr.params import load_params
from ftvsr.report import (
    MISSING,
    build_report,
    comparability_notes,
    crf_label,
    crf_number,
    evaluation_conditions,
    load_results,
    make_strip,
    paper_table,
    plot_tables,
    rate_distortion_table,
    read_bitrates,
    results_markdown,
    table_markdown,
)
from ftvsr.results import write_results

ROOT = Path(__file__).resolve().parents[1]

COLUMNS = ["dataset", "crf", "protocol", "method", "clip", "sequence", "frame", "psnr", "ssim"]


def fake_results(dataset, crf, protocol, ftvsr_psnr, bicubic_psnr, lanczos_psnr=None, clips=("000", "011"), frames=3):
    """Per-frame rows with known means: psnr alternates +-0.5 around the mean, ssim = psnr / 41.

    `lanczos_psnr` None: no Lanczos rows (results from before it was evaluated)."""
    means = {"ftvsr": ftvsr_psnr, "bicubic": bicubic_psnr, "lanczos": lanczos_psnr}
    rows = []
    for clip in clips:
        for frame in range(frames):
            wobble = 0.5 if frame % 2 else -0.5
            if frames % 2:  # keep the mean exact with an odd count
                wobble = 0.0 if frame == frames - 1 else wobble
            for method, mean in means.items():
                if mean is not None:
                    rows.append(
                        (dataset, crf, protocol, method, clip, clip, frame, mean + wobble, (mean + wobble) / 41)
                    )
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.fixture
def results(tmp_path):
    """REDS4 at raw and CRF 25 (published protocol, one folder each) and a `sample` set at CRF 25."""
    reds_raw = fake_results("REDS4", "raw", "published", 31.50, 26.00, 26.40)
    reds_25 = fake_results("REDS4", "crf25", "published", 28.25, 25.10, 25.30)
    sample = fake_results("sample", "crf25", "full", 30.00, 27.00, 27.20, clips=("bbb", "carphone"))
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
        for name in ("bicubic", "lanczos", "gt") + (("ftvsr",) if with_ftvsr else ()):
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
        "plots/psnr_vs_crf/REDS4.csv",
        "plots/psnr_vs_crf/sample.csv",
        "plots/rate_distortion/REDS4.csv",
        "plots/rate_distortion/sample.csv",
    }
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == expected
    assert {str(p.relative_to(out)) for p in written.values()} == expected
    for name in expected:
        if name.endswith(".png"):
            assert _is_png(out / name), name
    assert not list(out.glob(".*.tmp"))  # no leftovers of atomic writes

    # strips: a header (the titles wrap over the 64-pixel columns), then per clip an 18-pixel caption
    # band and 5 tiles (LR, bicubic, Lanczos, FTVSR, GT) of the 64-pixel crop side by side
    for name, clips in (("strip_crf25.png", 2), ("strip_raw.png", 1)):
        pixels, boxes = _strip(out / "strips" / name)
        assert pixels.shape[1] == 5 * 64 + 6 * 4 and len(boxes) == 5 * clips
        assert all(right - left == 64 and bottom - top == 64 for left, top, right, bottom in boxes.values())
        assert [boxes[(r, 0)][1] for r in range(clips)] == [boxes[(0, 0)][1] + r * (64 + 4 + 18) for r in range(clips)]
        assert pixels.shape[0] == boxes[(clips - 1, 0)][3] + 2 * 4


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
    assert rows["Lanczos"][at[("REDS4", "raw")]] == f"26.40/{26.4 / 41:.4f}"
    assert list(rows) == ["Bicubic", "Lanczos", "FTVSR (ours)", "FTVSR (published)", "Δ ours − published"]
    # published values sit beside ours with their delta; a cell we did not evaluate has no delta
    # published cells print with their source's digits; a Δ has the digits both numbers have
    assert rows["FTVSR (published)"][at[("REDS4", "raw")]] == "31.82/0.8960"
    assert rows["Δ ours − published"][at[("REDS4", "raw")]] == f"{31.50 - 31.82:+.2f}/{31.50 / 41 - 0.896:+.4f}"
    assert rows["FTVSR (published)"][at[("REDS4", "crf25")]] == "28.10/0.786"
    assert rows["Δ ours − published"][at[("REDS4", "crf25")]] == f"{28.25 - 28.10:+.2f}/{28.25 / 41 - 0.786:+.3f}"
    assert rows["FTVSR (published)"][at[("REDS4", "crf15")]] == "30.89/0.864"
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
    assert "31.50/0.7683" in tex and "31.82/0.8960" in tex and "30.89/0.864 " in tex
    ours_tex = next(line for line in tex.splitlines() if line.startswith("FTVSR (ours)"))
    assert ours_tex.count("--") == 6  # REDS4 CRF 15, 35 and the four Vid4 cells
    lanczos_tex = next(line for line in tex.splitlines() if line.startswith("Lanczos"))
    assert "26.40/0.6439" in lanczos_tex and "25.30/0.6171" in lanczos_tex
    assert MISSING not in tex  # LaTeX gets "--", not the unicode dash
    # results.md: CRF x method with FTVSR's delta vs bicubic and vs Lanczos
    res = (out / "results.md").read_text()
    assert "profile `paper`" in res
    assert (
        "| CRF | Bicubic | Lanczos | FTVSR (ours) | Δ PSNR vs Bicubic | Δ SSIM vs Bicubic "
        "| Δ PSNR vs Lanczos | Δ SSIM vs Lanczos |"
    ) in res
    assert "| CRF 25 | 25.10/0.6122 | 25.30/0.6171 | 28.25/0.6890 | +3.15 | +0.0768 | +2.95 | +0.0720 |" in res
    assert "no bitrate table" in res and "no saved frames" in res
    # the DVC plots table
    table = pd.read_csv(out / "psnr_vs_crf.csv")
    assert list(table.columns) == ["dataset", "crf", "method", "psnr", "ssim"]
    row = table[(table["dataset"] == "REDS4") & (table["crf"] == "crf25") & (table["method"] == "ftvsr")]
    assert row["psnr"].iloc[0] == pytest.approx(28.25)
    assert list(table[table["dataset"] == "REDS4"]["crf"].unique()) == ["raw", "crf25"]  # raw first


def test_results_table_has_a_delta_per_baseline():
    """FTVSR's Δ against each baseline that was evaluated: bicubic and Lanczos, or one of them."""
    both = results_markdown(fake_results("sample", "crf35", "full", 30.00, 27.00, 27.75), profile="t")
    row = next(line for line in both.splitlines() if line.startswith("| CRF 35"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["CRF 35", "27.00/0.6585", "27.75/0.6768", "30.00/0.7317", "+3.00", "+0.0732", "+2.25", "+0.0549"]
    # results from before Lanczos was evaluated: its column and deltas are left out, not invented
    old = results_markdown(fake_results("sample", "crf35", "full", 30.00, 27.00), profile="t")
    assert "Lanczos" not in old and "| CRF 35 | 27.00/0.6585 | 30.00/0.7317 | +3.00 | +0.0732 |" in old
    lanczos_only = fake_results("sample", "crf35", "full", 30.00, 27.00, 27.75).query("method != 'bicubic'")
    header = next(line for line in results_markdown(lanczos_only, profile="t").splitlines() if line.startswith("| CRF"))
    assert header == "| CRF | Lanczos | FTVSR (ours) | Δ PSNR vs Lanczos | Δ SSIM vs Lanczos |"


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
    assert lookup("reds4", "RAW").psnr == Decimal("31.82")
    assert lookup("REDS4", 25) is lookup("REDS4", "25") is lookup("REDS4", "crf25") is not None
    assert lookup("REDS4", "crf30") is None and lookup("Vid4", "raw", method="BasicVSR") is None
    assert {(r.dataset, r.crf) for r in PUBLISHED_RESULTS} == {
        (d, c) for d in ("REDS4", "Vid4") for c in ("raw", "crf15", "crf25", "crf35")
    }
    custom = (PublishedResult("Vid4", "crf25", "FTVSR", Decimal("26.0"), None, "test", "Vimeo-90K", "bd", "Y"),)
    assert lookup("vid4", "crf25", results=custom).psnr == Decimal("26.0")
    # each number keeps the digits its source prints; a float, which has lost them, is refused
    assert [str(lookup(d, "crf15").ssim) for d in ("REDS4", "Vid4")] == ["0.864", "0.826"]
    assert str(lookup("REDS4", "raw").ssim) == "0.8960"
    with pytest.raises(TypeError, match="Decimal"):
        PublishedResult("Vid4", "crf25", "FTVSR", 26.0, None, "test", "Vimeo-90K", "bd", "Y")  # type: ignore[arg-type]


def test_inputs_are_checked(results):
    with pytest.raises(FTVSRError, match="no evaluation results"):
        build_report([], "unused", profile="sample")
    with pytest.raises(FTVSRError, match="same frame appears in two results"):
        load_results([results[1], results[1]])
    with pytest.raises(FTVSRError, match="no per-frame results"):
        load_results(["/nonexistent/eval"])
    assert [crf_label(x) for x in ("raw", "CRF25", 15, "crf35")] == ["raw", "crf25", "crf15", "crf35"]


def test_report_from_a_real_evaluation(tmp_path):
    """evaluate_set (the baselines, saved frames) -> write_results -> build_report, on a tiny synthetic set."""
    from ftvsr.data.imresize import imresize
    from ftvsr.evaluate import evaluate_set, lanczos_upsample
    from ftvsr.io.frames import write_clip

    rng = np.random.default_rng(3)
    gt = np.stack([imresize(rng.random((5, 5, 3)), output_shape=(32, 48)) for _ in range(3)])
    gt = np.clip(gt * 255, 0, 255).round().astype(np.uint8)
    write_clip(tmp_path / "HR" / "carphone", gt)
    write_clip(tmp_path / "LR" / "raw" / "carphone", np.stack([imresize(f, 0.25) for f in gt]))
    frames = evaluate_set(
        tmp_path / "LR" / "raw",
        tmp_path / "HR",
        methods=("bicubic", "lanczos"),
        dataset="sample",
        crf="raw",
        save_frames_dir=tmp_path / "strips" / "raw",
        progress=False,
    )
    write_results(frames, tmp_path / "eval" / "raw")
    build_report([tmp_path / "eval" / "raw"], tmp_path / "report", strips_dir=tmp_path / "strips", profile="sample")
    pixels, boxes = _strip(tmp_path / "report" / "strips" / "strip_raw.png")
    # the 128-pixel crop is limited to the 48x32 frame; the GT tile (column 4) is the saved GT frame,
    # untouched, and the Lanczos tile (column 2) Lanczos of the LR frame
    assert boxes[(0, 4)][2:] == [boxes[(0, 4)][0] + 48, boxes[(0, 4)][1] + 32]
    left, top, right, bottom = boxes[(0, 4)]
    np.testing.assert_array_equal(pixels[top:bottom, left:right], gt[1])
    left, top, right, bottom = boxes[(0, 2)]
    lr = np.stack([imresize(f, 0.25) for f in gt])
    np.testing.assert_array_equal(pixels[top:bottom, left:right], lanczos_upsample(lr)[1])
    md = (tmp_path / "report" / "results.md").read_text()
    for method in ("bicubic", "lanczos"):
        scores = frames[frames["method"] == method]
        assert f"{scores['psnr'].mean():.2f}/{scores['ssim'].mean():.4f}" in md


def _strip(path):
    """A strip's pixels and its tile boxes {(row, column): [left, top, right, bottom]} from the PNG."""
    with Image.open(path) as strip:
        boxes = {(r, c): box for r, c, *box in json.loads(strip.info["tile_boxes"])}
        return np.asarray(strip.convert("RGB")), boxes


def _one_frame(datasets=("REDS4", "Vid4")):
    rows = [
        dict(dataset=d, crf="raw", protocol="published", method=m, clip="c", sequence="c", frame=0, psnr=30.0, ssim=0.9)
        for d in datasets
        for m in ("bicubic", "ftvsr")
    ]
    return pd.DataFrame(rows)


def test_delta_only_where_the_published_model_has_our_training_set():
    df = _one_frame()
    delta = {
        trained_on: paper_table(df, trained_on=trained_on)[1]["Δ ours − published"]
        for trained_on in ("REDS", "Vimeo-90K")
    }
    assert delta["REDS"][0] == "-1.82/+0.0040" and delta["REDS"][4] is None  # Vid4 published: Vimeo-90K model
    assert delta["Vimeo-90K"][0] is None and delta["Vimeo-90K"][4] == "+1.69/+0.040"  # 0.860: 3 digits
    assert "Vid4: no Δ ours − published" in table_markdown(df, trained_on="REDS")
    vimeo = table_markdown(df, trained_on="Vimeo-90K")
    assert "REDS4: no Δ" in vimeo and "training set (ours Vimeo-90K, published REDS)" in vimeo
    assert "Vid4: no Δ" not in vimeo


def test_delta_only_where_degradation_and_channel_match_too():
    """The published REDS4 cells are on REDS' own bicubic LR and RGB, the Vid4 ones on BD and Y."""
    df = _one_frame()
    published_setup = {"reds4": ("bi", "RGB"), "vid4": ("bd", "Y")}
    cases = {
        "published setup": (published_setup, []),
        "REDS4 degraded BD": ({**published_setup, "reds4": ("bd", "RGB")}, ["REDS4: ", "degradation (ours BD"]),
        "Vid4 on RGB": ({**published_setup, "vid4": ("bd", "RGB")}, ["Vid4: ", "channel (ours RGB, published Y)"]),
        "Vid4 not described": ({"reds4": ("bi", "RGB")}, ["Vid4: ", "degradation and channel (ours not given)"]),
    }
    for name, (conditions, said) in cases.items():
        delta = paper_table(df, trained_on=None, conditions=conditions)[1]["Δ ours − published"]
        notes = comparability_notes(["REDS4", "Vid4"], PUBLISHED_RESULTS, None, conditions)
        differs = {note.split(":")[0] for note in notes}
        assert (delta[0] is None) == ("REDS4" in differs), name
        assert (delta[4] is None) == ("Vid4" in differs), name
        assert len(notes) == (1 if said else 0), name
        for text in said:
            assert text in notes[0], (name, notes)
    # all three differ at once: one note names each
    note = comparability_notes(["REDS4"], PUBLISHED_RESULTS, "Vimeo-90K", {"REDS4": ("bd", "Y")})[0]
    assert all(part in note for part in ("training set (", "degradation (", "channel ("))
    md = table_markdown(df, trained_on="REDS", conditions={"reds4": ("bd", "Y"), "vid4": ("bd", "Y")})
    assert "- REDS4: protocol `published`, BD input, scored on Y" in md
    assert "| Δ ours − published | – | – |" in md  # REDS4 raw: setup differs; REDS4 CRF 15: not evaluated


def test_evaluation_conditions_follow_the_profiles():
    paper = load_params(ROOT / "profiles" / "paper.yaml")
    assert evaluation_conditions(paper) == {"reds4": ("bi", "RGB"), "vid4": ("bd", "Y")}
    regenerated = paper.model_copy(update={"data": paper.data.model_copy(update={"regenerate_lr": True})})
    assert evaluation_conditions(regenerated)["reds4"] == ("bi", "RGB")  # data.degradation is bi there too
    bd = regenerated.model_copy(
        update={"data": regenerated.data.model_copy(update={"degradation": "bd"}), "evaluate": paper.evaluate}
    )
    assert evaluation_conditions(bd) == {"reds4": ("bd", "RGB"), "vid4": ("bd", "Y")}
    assert evaluation_conditions(load_params(ROOT / "profiles" / "paper-vimeo.yaml")) == {"vid4": ("bd", "Y")}
    sample = load_params(ROOT / "profiles" / "sample.yaml")
    assert evaluation_conditions(sample) == {"natural_val": ("bd", "RGB"), "carphone": ("bd", "RGB")}
    # the paper profile's own setup is the published one: every published cell it evaluates gets a Δ
    df = _one_frame()
    delta = paper_table(df, trained_on="REDS", conditions=evaluation_conditions(paper))[1]["Δ ours − published"]
    assert delta[0] is not None and delta[4] is None  # Vid4's published model is trained on Vimeo-90K


def test_strip_captions_never_cover_the_crops(tmp_path):
    """Narrow crops: titles wrap and widen their column, and every crop is in the strip pixel for pixel."""
    rng = np.random.default_rng(5)
    crops = {}
    folders = []
    for clip in ("000", "a clip with a long name that has to wrap"):
        folder = tmp_path / clip
        frames = {
            name: rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for name in ("bicubic", "lanczos", "ftvsr", "gt")
        }
        frames["lr"] = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
        for name, frame in frames.items():
            write_frame(folder / f"{name}.png", frame)
        info = {"dataset": "REDS4", "crf": "crf35", "clip": clip, "frame": 7}
        folders.append((info, folder))
        lr = np.repeat(np.repeat(frames["lr"], 4, axis=0), 4, axis=1)
        crops[clip] = [
            c[8:32, 12:36] for c in (lr, frames["bicubic"], frames["lanczos"], frames["ftvsr"], frames["gt"])
        ]
    strip = make_strip(folders, crop=24)
    strip.save(tmp_path / "strip.png", pnginfo=_png_info(strip))
    pixels, boxes = _strip(tmp_path / "strip.png")
    assert len(boxes) == 10
    for r, clip in enumerate(crops):
        for c, crop in enumerate(crops[clip]):
            left, top, right, bottom = boxes[(r, c)]
            np.testing.assert_array_equal(pixels[top:bottom, left:right], crop, err_msg=f"tile {r},{c}")
    # the text is there, above the tiles: dark pixels in the header band of every column
    first_top = min(top for _, top, _, _ in boxes.values())
    for c in range(5):
        left, _, right, _ = boxes[(0, c)]
        assert (pixels[:first_top, left:right] < 100).any(), f"no title over column {c}"
    # the second caption wraps onto more lines: a taller band above the second row
    band_1 = boxes[(0, 0)][1] - first_top
    band_2 = boxes[(1, 0)][1] - boxes[(0, 0)][3]
    assert band_2 > band_1


def _png_info(image):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("tile_boxes", image.info["tile_boxes"])
    return info


def test_plot_tables_have_numeric_axes_and_a_column_per_method(results, bitrates):
    df = load_results(results)
    tables = plot_tables(df, read_bitrates(bitrates))
    crf = tables["psnr_vs_crf"]["REDS4"]
    assert list(crf.columns) == ["crf", "bicubic", "lanczos", "ftvsr"]
    assert crf["crf"].tolist() == [0, 25]  # raw is CRF 0
    assert crf["ftvsr"].tolist() == pytest.approx([31.50, 28.25])
    rd = tables["rate_distortion"]["sample"]
    assert list(rd.columns) == ["bitrate_kbps", "crf", "bicubic", "lanczos", "ftvsr"]
    assert rd.iloc[0].tolist() == pytest.approx([200.0, 25, 27.0, 27.2, 30.0])
    assert crf_number("raw") == 0 and crf_number("crf35") == 35 and crf_number("weird") is None


def _dvc_plots_project(project: Path, report: Path, loss_csv: Path) -> Path:
    """A DVC project holding the plot definitions of the real dvc.yaml (top level and the train stage's)."""
    project.mkdir()
    definitions = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    train_plots = definitions["stages"]["train"]["plots"]
    dvc_yaml = {"stages": {"train": {"cmd": "true", "plots": train_plots}}, "plots": definitions["plots"]}
    (project / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    (project / "params.yaml").write_text("profile: tiny\n")
    shutil.copytree(report, project / "reports" / "tiny")
    (project / "models" / "tiny").mkdir(parents=True)
    shutil.copy(loss_csv, project / "models" / "tiny" / "ftvsr_loss.csv")
    for args in (["init", "--no-scm", "-q"], ["config", "core.analytics", "false"]):
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, check=True, capture_output=True)
    return project


def test_dvc_renders_the_report_plots(tmp_path, results, bitrates, strips_dir):
    """`dvc plots show --json` on a report and dvc.yaml's plot definitions: numeric axes, a line per method."""
    build_report(
        results, tmp_path / "report", bitrate_tables=bitrates, strips_dir=strips_dir, profile="t", strip_crop=32
    )
    loss = tmp_path / "ftvsr_loss.csv"
    loss.write_text("step,loss,lr\n5,0.11,0.001\n10,0.09,0.0009\n15,0.08,0.0005\n")
    project = _dvc_plots_project(tmp_path / "project", tmp_path / "report", loss)
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=project, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert not shown.get("errors"), shown["errors"]
    plots = shown["data"]
    specs = {name: entries[0]["content"] for name, entries in plots.items() if entries[0]["type"] == "vega"}
    images = {name for name, entries in plots.items() if entries[0]["type"] == "image"}
    assert images == {f"reports/tiny/strips/strip_{crf}.png" for crf in ("raw", "crf25")}

    def points(name):
        spec = specs[name]
        x = spec["encoding"]["x"]
        assert x["type"] == "quantitative"
        return x["field"], spec["data"]["values"]

    # PSNR vs CRF, one plot per dataset: numeric CRFs (raw = 0), a line per method
    for dataset, crfs in (("REDS4", {0.0, 25.0}), ("sample", {25.0})):
        field, values = points(f"reports/tiny/plots/psnr_vs_crf/{dataset}.csv")
        assert field == "crf" and {float(v["crf"]) for v in values} == crfs
        assert {v["field"] for v in values} == {"bicubic", "lanczos", "ftvsr"}  # the series: one line per method
        ftvsr = {float(v["crf"]): float(v["dvc_inferred_y_value"]) for v in values if v["field"] == "ftvsr"}
        assert ftvsr[25.0] == pytest.approx(28.25 if dataset == "REDS4" else 30.0)
    # rate-distortion: the bitrate is a number (kbit/s)
    field, values = points("reports/tiny/plots/rate_distortion/REDS4.csv")
    assert field == "bitrate_kbps" and {float(v["bitrate_kbps"]) for v in values} == {500.0}
    assert {v["field"] for v in values} == {"bicubic", "lanczos", "ftvsr"}
    # training curves: the loss (the train stage's plot) and the learning rate, against the step
    for name, y in (("models/tiny/ftvsr_loss.csv", "loss"), ("learning_rate", "lr")):
        field, values = points(name)
        assert field == "step" and [float(v["step"]) for v in values] == [5.0, 10.0, 15.0]
        assert f'"field": "{y}"' in json.dumps(specs[name])  # the y axis draws that column
