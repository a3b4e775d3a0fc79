"""The report: paper-layout tables, plots and visual strips from evaluation results.

`build_report` reads per-frame results (`ftvsr.evaluate.evaluate_set` / `write_results`) and
writes into one folder:

- `results.md`: per dataset, a CRF x method table (PSNR/SSIM, delta vs bicubic) and per-clip means;
- `table.md`, `table.tex`: the paper's layout (rows Bicubic, FTVSR (ours), FTVSR (published),
  ours - published; columns REDS4 and Vid4 at raw, CRF 15, 25, 35, then any other dataset or CRF
  that was evaluated). A cell that was not evaluated, or has no published value, is "–": nothing
  is invented;
- `psnr_vs_crf.png` (one panel per dataset, methods as lines, published FTVSR as markers) and
  `psnr_vs_crf.csv` (dataset, crf, method, psnr, ssim: for `dvc plots`);
- `rate_distortion.png`: mean PSNR against the mean bitrate of the compressed LR clips (the
  compress stage's `bitrate.csv`, one per CRF);
- `per_frame_psnr.png`: PSNR along each clip, per method and CRF;
- `strip_<crf>.png`: LR (nearest-neighbour x4) / bicubic / FTVSR / GT crops side by side, one row
  per clip, from the frames `evaluate_set(save_frames_dir=...)` saved.

Every figure file is always written (a figure without data says so), so a DVC stage can declare
them all. Every write is atomic.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import overload

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from ftvsr.data.published_results import PAPER_CRFS, PAPER_DATASETS, PUBLISHED_RESULTS, PublishedResult, lookup
from ftvsr.errors import FTVSRError
from ftvsr.evaluate import ALL_CLIPS, GROUP_KEYS, read_results, summarize
from ftvsr.io.atomic import atomic_path, write_text_atomic
from ftvsr.io.frames import read_frame

MISSING = "–"  # an en dash: a cell with no number
METHOD_NAMES = {"bicubic": "Bicubic", "ftvsr": "FTVSR (ours)"}
STRIP_COLUMNS = (("lr", "LR (nearest x4)"), ("bicubic", "Bicubic"), ("ftvsr", "FTVSR"), ("gt", "GT"))
MAX_FRAME_PANELS = 12
TABLE_ROWS = ("Bicubic", "FTVSR (ours)", "FTVSR (published)", "Δ ours − published")


# --------------------------------------------------------------------------- names


def crf_label(crf: str | int) -> str:
    """Canonical CRF label: "raw" for uncompressed input, "crf<N>" for H.264 CRF N."""
    text = str(crf).strip().lower()
    if text in ("raw", "uncompressed", "none", "-1"):
        return "raw"
    digits = text[3:] if text.startswith("crf") else text
    return f"crf{int(digits)}" if digits.isdigit() else text


def crf_sort_key(crf: str) -> tuple[int, float, str]:
    label = crf_label(crf)
    if label == "raw":
        return (0, 0.0, label)
    if label.startswith("crf") and label[3:].isdigit():
        return (1, float(label[3:]), label)
    return (2, 0.0, label)


def crf_title(crf: str) -> str:
    label = crf_label(crf)
    return "Raw" if label == "raw" else (f"CRF {label[3:]}" if label.startswith("crf") else label)


def _canonical_dataset(name: str) -> str:
    for paper in PAPER_DATASETS:
        if name.lower() == paper.lower():
            return paper
    return name


# --------------------------------------------------------------------------- loading


def load_results(results: Sequence[str | os.PathLike | pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-frame results (result folders, frames.csv files, or DataFrames); labels normalised."""
    if not results:
        raise FTVSRError("report: no evaluation results given")
    frames = [r.copy() if isinstance(r, pd.DataFrame) else read_results(r) for r in results]
    for df in frames:
        if "frame" not in df:
            raise FTVSRError("report: results must be per-frame (the frames.csv of an evaluation)")
    df = pd.concat(frames, ignore_index=True)
    df["crf"] = df["crf"].map(crf_label)
    df["dataset"] = df["dataset"].map(_canonical_dataset)
    if "sequence" not in df:
        df["sequence"] = df["clip"]
    key = [*GROUP_KEYS, "clip", "frame"]
    dup = df.duplicated(subset=key)
    if dup.any():
        first = df.loc[dup, key].iloc[0].to_dict()
        raise FTVSRError(f"report: the same frame appears in two results ({first}): give each evaluation once")
    return df


def _table_protocols(overall: pd.DataFrame) -> dict[str, str]:
    """For each dataset, the protocol its table cells come from: "published" when evaluated so, else "full"."""
    chosen = {}
    for dataset, rows in overall.groupby("dataset", sort=False):
        protocols = set(rows["protocol"])
        chosen[dataset] = "published" if "published" in protocols else sorted(protocols)[0]
    return chosen


def _overall(df: pd.DataFrame) -> pd.DataFrame:
    summary = summarize(df)
    return summary[summary["clip"] == ALL_CLIPS].drop(columns="clip").reset_index(drop=True)


def _cell(overall: pd.DataFrame, dataset: str, crf: str, protocol: str, method: str) -> tuple[float, float] | None:
    hit = overall[
        (overall["dataset"] == dataset)
        & (overall["crf"] == crf)
        & (overall["protocol"] == protocol)
        & (overall["method"] == method)
    ]
    if hit.empty:
        return None
    return float(hit["psnr"].iloc[0]), float(hit["ssim"].iloc[0])


# --------------------------------------------------------------------------- tables


@overload
def _fmt(value: tuple[float, float] | None, missing: str = MISSING) -> str: ...
@overload
def _fmt(value: tuple[float, float] | None, missing: None) -> str | None: ...
def _fmt(value: tuple[float, float] | None, missing: str | None = MISSING) -> str | None:
    if value is None:
        return missing
    p, s = value
    return f"{p:.2f}/{s:.4f}"


@overload
def _fmt_delta(a: tuple[float, float] | None, b: tuple[float, float | None] | None, missing: str = MISSING) -> str: ...
@overload
def _fmt_delta(a: tuple[float, float] | None, b: tuple[float, float | None] | None, missing: None) -> str | None: ...
def _fmt_delta(
    a: tuple[float, float] | None, b: tuple[float, float | None] | None, missing: str | None = MISSING
) -> str | None:
    if a is None or b is None:
        return missing
    dp = f"{a[0] - b[0]:+.2f}"
    ds = f"{a[1] - b[1]:+.4f}" if b[1] is not None else missing
    return f"{dp}/{ds}"


def paper_table(
    df: pd.DataFrame, published: Sequence[PublishedResult] = PUBLISHED_RESULTS, trained_on: str | None = None
) -> tuple[list[tuple[str, str]], dict[str, list[str | None]], dict[str, str]]:
    """Columns [(dataset, crf)], rows {name: [cell text or None]}, protocol per dataset; None = missing.

    `trained_on`: our model's training set (`TRAINING_SETS`); the Δ row is left empty where the
    published model was trained on another (`cross_dataset_notes` says so). None: always a Δ.
    """
    overall = _overall(df)
    protocols = _table_protocols(overall)
    datasets = list(PAPER_DATASETS) + [d for d in dict.fromkeys(overall["dataset"]) if d not in PAPER_DATASETS]
    columns: list[tuple[str, str]] = []
    for dataset in datasets:
        crfs = set(PAPER_CRFS) if dataset in PAPER_DATASETS else set()
        crfs |= set(overall.loc[overall["dataset"] == dataset, "crf"])
        columns += [(dataset, c) for c in sorted(crfs, key=crf_sort_key)]
    published = tuple(published)
    rows: dict[str, list[str | None]] = {name: [] for name in TABLE_ROWS}
    for dataset, crf in columns:
        protocol = protocols.get(dataset, "full")
        bic = _cell(overall, dataset, crf, protocol, "bicubic")
        ours = _cell(overall, dataset, crf, protocol, "ftvsr")
        pub_entry = lookup(dataset, crf, "FTVSR", published)
        pub = (pub_entry.psnr, pub_entry.ssim) if pub_entry else None
        rows["Bicubic"].append(_fmt(bic, None))
        rows["FTVSR (ours)"].append(_fmt(ours, None))
        rows["FTVSR (published)"].append(
            None if pub is None else (f"{pub[0]:.2f}/{pub[1]:.4f}" if pub[1] is not None else f"{pub[0]:.2f}/{MISSING}")
        )
        comparable = pub_entry is not None and trained_on in (None, pub_entry.trained_on)
        rows["Δ ours − published"].append(_fmt_delta(ours, pub, None) if comparable else None)
    return columns, rows, protocols


def cross_dataset_notes(
    datasets: Iterable[str], published: Sequence[PublishedResult], trained_on: str | None
) -> list[str]:
    """One line per evaluated dataset whose published numbers come from a model trained on another set."""
    if trained_on is None:
        return []
    notes = []
    for dataset in dict.fromkeys(datasets):
        others = {e.trained_on for e in published if e.dataset == dataset and e.trained_on != trained_on}
        if others:
            notes.append(
                f"{dataset}: ours is trained on {trained_on}, the published numbers on {', '.join(sorted(others))}: "
                "a cross-dataset result, not the paper's, so no Δ"
            )
    return notes


def _published_sources(columns: Sequence[tuple[str, str]], published: Sequence[PublishedResult]) -> list[str]:
    sources = []
    for dataset, crf in columns:
        entry = lookup(dataset, crf, "FTVSR", tuple(published))
        if entry and entry.source not in sources:
            sources.append(entry.source)
    return sources


def table_markdown(
    df: pd.DataFrame, published: Sequence[PublishedResult] = PUBLISHED_RESULTS, trained_on: str | None = None
) -> str:
    columns, rows, protocols = paper_table(df, published, trained_on)
    header = "| Method | " + " | ".join(f"{d} {crf_title(c)}" for d, c in columns) + " |"
    lines = [
        "PSNR (dB) / SSIM, 4x. " + MISSING + " = not evaluated / no published value.",
        "",
        header,
        "|---|" + "---|" * len(columns),
    ]
    for name, cells in rows.items():
        lines.append(f"| {name} | " + " | ".join(MISSING if c is None else c for c in cells) + " |")
    lines.append("")
    lines += [f"- {d}: protocol `{p}`" for d, p in protocols.items()]
    lines += [f"- published numbers: {s}" for s in _published_sources(columns, published)]
    lines += [f"- {note}" for note in cross_dataset_notes(protocols, published, trained_on)]
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    return text.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&").replace("#", r"\#")


def table_latex(
    df: pd.DataFrame, published: Sequence[PublishedResult] = PUBLISHED_RESULTS, trained_on: str | None = None
) -> str:
    """The paper-layout table as a booktabs `tabular` (needs `\\usepackage{booktabs}`)."""
    columns, rows, _ = paper_table(df, published, trained_on)
    groups: list[tuple[str, int]] = []
    for dataset, _crf in columns:
        if groups and groups[-1][0] == dataset:
            groups[-1] = (dataset, groups[-1][1] + 1)
        else:
            groups.append((dataset, 1))
    spec = "l" + "".join(" " + "c" * n for _, n in groups)
    lines = [r"\begin{tabular}{" + spec + "}", r"\toprule"]
    lines.append(" & " + " & ".join(rf"\multicolumn{{{n}}}{{c}}{{{_tex_escape(d)}}}" for d, n in groups) + r" \\")
    start = 2
    rules = []
    for _, n in groups:
        rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    lines.append("".join(rules))
    lines.append("Method & " + " & ".join(_tex_escape(crf_title(c)) for _, c in columns) + r" \\")
    lines.append(r"\midrule")
    for name, cells in rows.items():
        label = name.replace("Δ ours − published", r"$\Delta$ ours $-$ published")
        text = [("--" if c is None else c.replace(MISSING, "--")) for c in cells]
        lines.append(f"{label} & " + " & ".join(text) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def results_markdown(df: pd.DataFrame, *, profile: str, notes: Sequence[str] = ()) -> str:
    """Per dataset and protocol: CRF x method (PSNR/SSIM) with delta vs bicubic; then per-clip FTVSR PSNR."""
    summary = summarize(df)
    overall = summary[summary["clip"] == ALL_CLIPS]
    lines = [f"# Evaluation results (profile `{profile}`)", ""]
    for (dataset, protocol), rows in overall.groupby(["dataset", "protocol"], sort=False):
        present = set(rows["method"])
        methods: list[str] = [m for m in ("bicubic", "ftvsr") if m in present] + sorted(present - {"bicubic", "ftvsr"})
        lines += [f"## {dataset} (protocol `{protocol}`)", ""]
        header = "| CRF | " + " | ".join(METHOD_NAMES.get(m, m) for m in methods)
        with_delta = "bicubic" in methods and "ftvsr" in methods
        header += " | Δ PSNR | Δ SSIM |" if with_delta else " |"
        lines += [header, "|---|" + "---|" * (len(methods) + (2 if with_delta else 0))]
        for crf in sorted(set(rows["crf"]), key=crf_sort_key):
            at = rows[rows["crf"] == crf]
            cells = {m: (float(r.psnr), float(r.ssim)) for m in methods for r in at[at["method"] == m].itertuples()}
            line = f"| {crf_title(crf)} | " + " | ".join(_fmt(cells.get(m)) for m in methods)
            if with_delta:
                if "ftvsr" in cells and "bicubic" in cells:
                    (p1, s1), (p0, s0) = cells["ftvsr"], cells["bicubic"]
                    line += f" | {p1 - p0:+.2f} | {s1 - s0:+.4f} |"
                else:
                    line += f" | {MISSING} | {MISSING} |"
            else:
                line += " |"
            lines.append(line)
        lines.append("")
        per_clip = summary[
            (summary["dataset"] == dataset) & (summary["protocol"] == protocol) & (summary["clip"] != ALL_CLIPS)
        ]
        crfs = sorted(set(per_clip["crf"]), key=crf_sort_key)
        lines += [
            "Per clip, PSNR (dB) of each method:",
            "",
            "| clip | method | " + " | ".join(crf_title(c) for c in crfs) + " |",
            "|---|---|" + "---|" * len(crfs),
        ]
        for (clip, method), clip_rows in per_clip.groupby(["clip", "method"], sort=True):
            values = {r.crf: f"{r.psnr:.2f}" for r in clip_rows.itertuples()}
            cells_text = " | ".join(values.get(c, MISSING) for c in crfs)
            lines.append(f"| {clip} | {METHOD_NAMES.get(method, method)} | {cells_text} |")
        lines.append("")
    lines += [
        "Means: PSNR/SSIM per frame, averaged over each clip's frames, then over clips (equal weight per clip).",
        "",
    ]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- plots


def _save_figure(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _empty_figure(message: str) -> Figure:
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    return fig


def psnr_vs_crf_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR/SSIM per dataset, CRF and method (table protocol per dataset), CRFs in order."""
    overall = _overall(df)
    protocols = _table_protocols(overall)
    keep = overall[overall.apply(lambda r: r["protocol"] == protocols[r["dataset"]], axis=1)]
    out = keep[["dataset", "crf", "method", "psnr", "ssim"]].copy()
    out["_order"] = out["crf"].map(crf_sort_key)
    return out.sort_values(["dataset", "_order", "method"]).drop(columns="_order").reset_index(drop=True)


def plot_psnr_vs_crf(table: pd.DataFrame, published: Sequence[PublishedResult] = PUBLISHED_RESULTS) -> Figure:
    datasets = list(dict.fromkeys(table["dataset"]))
    fig = Figure(figsize=(5 * max(1, len(datasets)), 4), layout="constrained")
    for k, dataset in enumerate(datasets):
        ax = fig.add_subplot(1, len(datasets), k + 1)
        rows = table[table["dataset"] == dataset]
        crfs = sorted(set(rows["crf"]) | ({*PAPER_CRFS} if dataset in PAPER_DATASETS else set()), key=crf_sort_key)
        x_of = {c: i for i, c in enumerate(crfs)}
        for method, m_rows in rows.groupby("method", sort=False):
            m_rows = m_rows.sort_values("crf", key=lambda s: s.map(crf_sort_key))
            ax.plot(
                [x_of[c] for c in m_rows["crf"]], m_rows["psnr"], marker="o", label=METHOD_NAMES.get(method, method)
            )
        pub = [(x_of[c], e.psnr) for c in crfs if (e := lookup(dataset, c, "FTVSR", tuple(published)))]
        if pub:
            ax.plot(*zip(*pub, strict=True), linestyle="--", marker="s", label="FTVSR (published)")
        ax.set_xticks(range(len(crfs)), [crf_title(c) for c in crfs])
        ax.set_title(dataset)
        ax.set_xlabel("compression of the LR input")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def read_bitrates(bitrate_tables: Mapping) -> pd.DataFrame:
    """Rows (dataset or "", crf, clip, bitrate_kbps) from the compress stage's per-CRF `bitrate.csv` files.

    Keys are a CRF (applies to any dataset whose clips it lists) or a (dataset, CRF) pair.
    """
    frames = []
    for key, path in bitrate_tables.items():
        dataset, crf = key if isinstance(key, tuple) else ("", key)
        path = Path(path)
        if not path.is_file():
            raise FTVSRError(f"bitrate table not found: {path}")
        table = pd.read_csv(path, dtype={"clip": str})
        missing = [c for c in ("clip", "bitrate_kbps") if c not in table]
        if missing:
            raise FTVSRError(f"bitrate table {path} lacks the columns {missing}")
        frames.append(
            pd.DataFrame(
                {
                    "dataset": _canonical_dataset(dataset) if dataset else "",
                    "crf": crf_label(crf),
                    "clip": table["clip"],
                    "bitrate_kbps": table["bitrate_kbps"].astype(float),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["dataset", "crf", "clip", "bitrate_kbps"])
    return pd.concat(frames, ignore_index=True)


def rate_distortion_table(df: pd.DataFrame, bitrates: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, CRF and method: mean PSNR and the mean bitrate of the clips that were evaluated."""
    points = []
    table = psnr_vs_crf_table(df)
    for row in table.itertuples():
        clips = set(df.loc[(df["dataset"] == row.dataset) & (df["crf"] == row.crf), "sequence"])
        rates = bitrates[
            (bitrates["crf"] == row.crf) & bitrates["dataset"].isin(["", row.dataset]) & bitrates["clip"].isin(clips)
        ]
        if rates.empty:
            continue
        points.append(
            {
                "dataset": row.dataset,
                "crf": row.crf,
                "method": row.method,
                "bitrate_kbps": float(rates["bitrate_kbps"].mean()),
                "psnr": float(row.psnr),
            }
        )
    return pd.DataFrame(points, columns=["dataset", "crf", "method", "bitrate_kbps", "psnr"])


def plot_rate_distortion(points: pd.DataFrame) -> Figure:
    if points.empty:
        return _empty_figure("no bitrate data: pass the compress stage's bitrate.csv tables")
    datasets = list(dict.fromkeys(points["dataset"]))
    fig = Figure(figsize=(5 * len(datasets), 4), layout="constrained")
    for k, dataset in enumerate(datasets):
        ax = fig.add_subplot(1, len(datasets), k + 1)
        rows = points[points["dataset"] == dataset]
        for method, m_rows in rows.groupby("method", sort=False):
            m_rows = m_rows.sort_values("bitrate_kbps")
            ax.plot(m_rows["bitrate_kbps"], m_rows["psnr"], marker="o", label=METHOD_NAMES.get(method, method))
            for r in m_rows.itertuples():
                ax.annotate(
                    crf_title(r.crf), (r.bitrate_kbps, r.psnr), textcoords="offset points", xytext=(4, 4), fontsize=8
                )
        ax.set_xscale("log")
        ax.set_title(dataset)
        ax.set_xlabel("bitrate of the LR input (kbit/s)")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    return fig


def plot_per_frame(df: pd.DataFrame) -> Figure:
    """PSNR along each clip (mean over its crops under the published protocol); methods x CRFs as lines."""
    panels = list(dict.fromkeys(zip(df["dataset"], df["sequence"], strict=True)))[:MAX_FRAME_PANELS]
    if not panels:
        return _empty_figure("no per-frame results")
    cols = min(3, len(panels))
    n_rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(5 * cols, 3.2 * n_rows), layout="constrained")
    crfs = sorted(set(df["crf"]), key=crf_sort_key)
    colours = {c: f"C{i % 10}" for i, c in enumerate(crfs)}
    styles = {"bicubic": ":", "ftvsr": "-"}
    for k, (dataset, sequence) in enumerate(panels):
        ax = fig.add_subplot(n_rows, cols, k + 1)
        rows = df[(df["dataset"] == dataset) & (df["sequence"] == sequence)]
        for (crf, method), line in rows.groupby(["crf", "method"], sort=False):
            curve = line.groupby("frame")["psnr"].mean()
            ax.plot(
                curve.index,
                curve.values,
                linestyle=styles.get(method, "--"),
                color=colours[crf],
                label=f"{METHOD_NAMES.get(method, method)} {crf_title(crf)}",
            )
        ax.set_title(f"{dataset} / {sequence}", fontsize=10)
        ax.set_xlabel("frame")
        ax.set_ylabel("PSNR (dB)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7)
    return fig


# --------------------------------------------------------------------------- visual strips


def _find_strip_frames(strips_dir: Path) -> list[tuple[dict, Path]]:
    found = []
    for info_path in sorted(strips_dir.rglob("info.json")):
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError) as exc:
            raise FTVSRError(f"unreadable strip description {info_path}: {exc}") from None
        if not {"crf", "clip"} <= set(info):
            raise FTVSRError(f"strip description {info_path} lacks 'crf' or 'clip'")
        found.append((info, info_path.parent))
    return found


def _centre_crop_box(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    ch, cw = min(h, size), min(w, size)
    top, left = (h - ch) // 2, (w - cw) // 2
    return top, left, top + ch, left + cw


def make_strip(folders: Sequence[tuple[dict, Path]], crop: int = 128) -> Image.Image:
    """One image: a header of column labels, then per clip a label band and its 4 crops side by side."""
    try:
        font = ImageFont.load_default(size=12)  # a TrueType font where Pillow has FreeType
    except (TypeError, OSError):
        font = ImageFont.load_default()
    label_h, gap = 18, 4
    tiles_by_row = []
    for info, folder in folders:
        gt = read_frame(folder / "gt.png")
        h, w = gt.shape[:2]
        top, left, bottom, right = _centre_crop_box(h, w, crop)
        row: list[np.ndarray | None] = []  # None: a method without saved frames
        for key, _title in STRIP_COLUMNS:
            path = folder / f"{key}.png"
            if not path.is_file():
                row.append(None)
                continue
            img = read_frame(path)
            if key == "lr":  # nearest-neighbour to the GT size, so the same box shows the same content
                factor = h // img.shape[0]
                img = np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)
            if img.shape[:2] != (h, w):
                raise FTVSRError(f"{path} is {img.shape[1]}x{img.shape[0]}, its GT {folder / 'gt.png'} is {w}x{h}")
            row.append(img[top:bottom, left:right])
        tiles_by_row.append((info, row, (bottom - top, right - left)))
    tile_w = max(size[1] for *_, size in tiles_by_row)
    width = len(STRIP_COLUMNS) * tile_w + (len(STRIP_COLUMNS) + 1) * gap
    height = label_h + sum(label_h + size[0] + gap for *_, size in tiles_by_row) + gap
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, (_key, title) in enumerate(STRIP_COLUMNS):
        draw.text((gap + c * (tile_w + gap) + 2, 3), title, fill="black", font=font)
    y = label_h
    for info, row, (th, tw) in tiles_by_row:
        parts = [info.get("dataset"), info["clip"], f"frame {info.get('frame', '?')}", crf_title(info["crf"])]
        caption = " / ".join(str(p) for p in parts if p)
        draw.text((gap + 2, y + 3), caption, fill="black", font=font)
        y += label_h
        for c, tile in enumerate(row):
            x = gap + c * (tile_w + gap)
            if tile is None:
                draw.rectangle([x, y, x + tw - 1, y + th - 1], fill=(200, 200, 200))
                draw.text((x + 4, y + 4), "n/a", fill="black", font=font)
            else:
                canvas.paste(Image.fromarray(tile), (x, y))
        y += th + gap
    return canvas


def write_strips(strips_dir: str | os.PathLike, out_dir: Path, crop: int = 128) -> list[Path]:
    """`strip_<crf>.png` for every CRF with saved frames under `strips_dir`."""
    strips_dir = Path(strips_dir)
    if not strips_dir.is_dir():
        raise FTVSRError(f"strips folder not found: {strips_dir}")
    by_crf: dict[str, list[tuple[dict, Path]]] = {}
    for info, folder in _find_strip_frames(strips_dir):
        by_crf.setdefault(crf_label(info["crf"]), []).append((info, folder))
    written = []
    for crf in sorted(by_crf, key=crf_sort_key):
        rows = sorted(by_crf[crf], key=lambda item: (str(item[0].get("dataset", "")), str(item[0]["clip"])))
        path = out_dir / f"strip_{crf}.png"
        image = make_strip(rows, crop=crop)
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG")
        written.append(path)
    return written


# --------------------------------------------------------------------------- the report


def build_report(
    results: Sequence[str | os.PathLike | pd.DataFrame],
    out_dir: str | os.PathLike,
    *,
    bitrate_tables: Mapping | None = None,
    strips_dir: str | os.PathLike | None = None,
    published: Sequence[PublishedResult] = PUBLISHED_RESULTS,
    profile: str,
    trained_on: str | None = None,
    strip_crop: int = 128,
) -> dict[str, Path]:
    """Write the report's tables, plots and strips into `out_dir`; returns the written paths by name.

    `results`: per-frame results (folders written by `write_results`, their frames.csv, or
    DataFrames from `evaluate_set`), any mix of datasets, CRFs and protocols. `bitrate_tables`:
    CRF (or (dataset, CRF)) -> the compress stage's `bitrate.csv`. `strips_dir`: where
    `evaluate_set(save_frames_dir=...)` saved frames (searched recursively for `info.json`).
    `trained_on`: the model's training set, for which published numbers are comparable (`paper_table`).
    """
    df = load_results(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    notes: list[str] = []

    table = psnr_vs_crf_table(df)
    written["psnr_vs_crf_csv"] = out_dir / "psnr_vs_crf.csv"
    with atomic_path(written["psnr_vs_crf_csv"]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    notes += cross_dataset_notes(df["dataset"], published, trained_on)
    written["table_md"] = out_dir / "table.md"
    write_text_atomic(written["table_md"], table_markdown(df, published, trained_on))
    written["table_tex"] = out_dir / "table.tex"
    write_text_atomic(written["table_tex"], table_latex(df, published, trained_on))

    written["psnr_vs_crf"] = out_dir / "psnr_vs_crf.png"
    _save_figure(plot_psnr_vs_crf(table, published), written["psnr_vs_crf"])

    bitrates = read_bitrates(bitrate_tables or {})
    points = rate_distortion_table(df, bitrates)
    if points.empty:
        notes.append("rate-distortion plot: no bitrate table matched the evaluated clips")
    written["rate_distortion"] = out_dir / "rate_distortion.png"
    _save_figure(plot_rate_distortion(points), written["rate_distortion"])

    written["per_frame_psnr"] = out_dir / "per_frame_psnr.png"
    _save_figure(plot_per_frame(df), written["per_frame_psnr"])

    if strips_dir is not None:
        (out_dir / "strips").mkdir(exist_ok=True)
        for path in write_strips(strips_dir, out_dir / "strips", crop=strip_crop):
            written[path.stem] = path
    else:
        notes.append("visual strips: no saved frames given")

    written["results_md"] = out_dir / "results.md"
    write_text_atomic(written["results_md"], results_markdown(df, profile=profile, notes=notes))
    return written
