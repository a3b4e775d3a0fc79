"""The report: paper-layout tables, plots and visual strips from evaluation results.

`build_report` reads per-frame results (`ftvsr.evaluate.evaluate_set` / `write_results`) and
writes into one folder:

- `results.md`: per dataset, a CRF x method table (PSNR/SSIM, deltas of FTVSR vs bicubic and vs
  Lanczos) and per-clip means;
- `table.md`, `table.tex`: the paper's layout (rows Bicubic, Lanczos, FTVSR (ours), FTVSR
  (published), ours - published; columns REDS4 and Vid4 at raw, CRF 15, 25, 35, then any other
  dataset or CRF that was evaluated). A cell that was not evaluated, or has no published value, is "–": nothing
  is invented. Published cells print as their sources do; the Δ is drawn only where the
  published model shares our training set, degradation and channel (a note says what differs);
- `psnr_vs_crf.png` (one panel per dataset, methods as lines, published FTVSR as markers) and
  `psnr_vs_crf.csv` (dataset, crf, method, psnr, ssim: the long table);
- `plots/psnr_vs_crf/<dataset>.csv` and `plots/rate_distortion/<dataset>.csv`: the same numbers
  as one numeric x column (CRF, raw = 0; bitrate in kbit/s) and one PSNR column per method, the
  tables dvc.yaml's `plots:` draws and `dvc plots diff` overlays;
- `rate_distortion.png`: mean PSNR against the mean bitrate of the compressed LR clips (the
  compress stage's `bitrate.csv`, one per CRF);
- `per_frame_psnr.png`: PSNR along each clip, per method and CRF;
- `strips/strip_<crf>.png`: LR (nearest-neighbour x4) / bicubic / Lanczos / FTVSR / GT crops side
  by side, one row per clip, from the frames `evaluate_set(save_frames_dir=...)` saved; every caption in a
  band of its own, never over a crop.

Every figure file is always written (a figure without data says so), so a DVC stage can declare
them all. Every write is atomic.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from ftvsr.data.arrange import LR_SET_FOLDERS, TEST_SET_SOURCES
from ftvsr.data.published_results import (
    PAPER_CRFS,
    PAPER_DATASETS,
    PUBLISHED_RESULTS,
    PublishedResult,
    decimals,
    lookup,
)
from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import atomic_path, write_text_atomic
from ftvsr.io.frames import read_frame
from ftvsr.results import ALL_CLIPS, BASELINE_SUFFIXES, GROUP_KEYS, overall_means, read_results, summarize
from ftvsr.results import level_label as crf_label
from ftvsr.results import level_sort_key as crf_sort_key
from ftvsr.results import level_title as crf_title

if TYPE_CHECKING:
    from ftvsr.params import Params

MISSING = "–"  # an en dash: a cell with no number
METHOD_NAMES = {"bicubic": "Bicubic", "lanczos": "Lanczos", "ftvsr": "FTVSR (ours)"}
BASELINES = tuple(BASELINE_SUFFIXES)  # bicubic, lanczos: FTVSR's deltas are against each
METHOD_ORDER = (*BASELINES, "ftvsr")  # tables list these first, in this order, then any other
STRIP_COLUMNS = (
    ("lr", "LR (nearest x4)"),
    ("bicubic", "Bicubic"),
    ("lanczos", "Lanczos"),
    ("ftvsr", "FTVSR"),
    ("gt", "GT"),
)
MAX_FRAME_PANELS = 12
TABLE_ROWS = ("Bicubic", "Lanczos", "FTVSR (ours)", "FTVSR (published)", "Δ ours − published")


# --------------------------------------------------------------------------- names


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


def _fmt_published(entry: PublishedResult) -> str:
    """A published cell exactly as its source prints it ("30.89/0.864", not "30.89/0.8640")."""
    ssim = MISSING if entry.ssim is None else format(entry.ssim, "f")
    return f"{format(entry.psnr, 'f')}/{ssim}"


def _fmt_delta(ours: tuple[float, float] | None, entry: PublishedResult | None) -> str | None:
    """Ours − published, to the digits both have: a 3-digit published SSIM gives a 3-digit Δ."""
    if ours is None or entry is None:
        return None
    dp = f"{ours[0] - float(entry.psnr):+.{min(2, decimals(entry.psnr))}f}"
    ds = MISSING if entry.ssim is None else f"{ours[1] - float(entry.ssim):+.{min(4, decimals(entry.ssim))}f}"
    return f"{dp}/{ds}"


# Our evaluation's inputs per dataset: (degradation "bi"/"bd", channel "RGB"/"Y"); see `evaluation_conditions`.
Conditions = Mapping[str, tuple[str, str]]
DEGRADATION_NAMES = {"bi": "BI (bicubic)", "bd": "BD (Gaussian blur, then downsampling)"}
# The degradation of the LR frames a dataset comes with (`ftvsr.data.arrange.LR_SET_FOLDERS`).
DATASET_LR_DEGRADATION = {"reds": "bi"}


def evaluation_conditions(params: Params) -> dict[str, tuple[str, str]]:
    """For each evaluated dataset, the degradation of its LR input and the channel it is scored on.

    As the degrade stage does: a test set whose dataset comes with its own LR (REDS' bicubic x4)
    reads that LR unless `data.regenerate_lr`; any other is degraded with
    `data.test_degradation[name]`, else `data.degradation`. Scored on Y where named in
    `evaluate.y_channel_datasets`, else on RGB.
    """
    data, evaluate = params.data, params.evaluate
    conditions = {}
    for name in evaluate.datasets:
        own_lr = data.source != "sample" and TEST_SET_SOURCES.get(name) in LR_SET_FOLDERS and not data.regenerate_lr
        degradation = DATASET_LR_DEGRADATION[TEST_SET_SOURCES[name]] if own_lr else None
        degradation = degradation or data.test_degradation.get(name, data.degradation)
        conditions[name] = (degradation, "Y" if name in evaluate.y_channel_datasets else "RGB")
    return conditions


def _conditions_of(dataset: str, conditions: Conditions) -> tuple[str, str] | None:
    for name, value in conditions.items():
        if name.lower() == dataset.lower():
            return value
    return None


def _differences(entry: PublishedResult, trained_on: str | None, conditions: Conditions | None) -> list[str]:
    """What keeps `entry` from being compared with ours: training set, degradation, channel; [] = comparable.

    `trained_on` None or `conditions` None: that part is not checked (the caller did not say).
    """
    found = []
    if trained_on is not None and trained_on != entry.trained_on:
        found.append(f"training set (ours {trained_on}, published {entry.trained_on})")
    if conditions is not None:
        ours = _conditions_of(entry.dataset, conditions)
        if ours is None:
            found.append("degradation and channel (ours not given)")
        else:
            degradation, channel = ours
            if degradation.lower() != entry.degradation.lower():
                names = [DEGRADATION_NAMES.get(d.lower(), d) for d in (degradation, entry.degradation)]
                found.append(f"degradation (ours {names[0]}, published {names[1]})")
            if channel.upper() != entry.channel.upper():
                found.append(f"channel (ours {channel}, published {entry.channel})")
    return found


def paper_table(
    df: pd.DataFrame,
    published: Sequence[PublishedResult] = PUBLISHED_RESULTS,
    trained_on: str | None = None,
    conditions: Conditions | None = None,
) -> tuple[list[tuple[str, str]], dict[str, list[str | None]], dict[str, str]]:
    """Columns [(dataset, crf)], rows {name: [cell text or None]}, protocol per dataset; None = missing.

    Published cells print as their source does. The Δ row is left empty where the published
    number differs from ours in training set (`trained_on`, a `TRAINING_SETS` name), degradation or
    channel (`conditions`, see `evaluation_conditions`); `comparability_notes` says which. A
    None argument is not checked.
    """
    overall = overall_means(df)
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
        lanczos = _cell(overall, dataset, crf, protocol, "lanczos")
        ours = _cell(overall, dataset, crf, protocol, "ftvsr")
        entry = lookup(dataset, crf, "FTVSR", published)
        rows["Bicubic"].append(_fmt(bic, None))
        rows["Lanczos"].append(_fmt(lanczos, None))
        rows["FTVSR (ours)"].append(_fmt(ours, None))
        rows["FTVSR (published)"].append(None if entry is None else _fmt_published(entry))
        comparable = entry is not None and not _differences(entry, trained_on, conditions)
        rows["Δ ours − published"].append(_fmt_delta(ours, entry) if comparable else None)
    return columns, rows, protocols


def comparability_notes(
    datasets: Iterable[str],
    published: Sequence[PublishedResult],
    trained_on: str | None,
    conditions: Conditions | None = None,
) -> list[str]:
    """One line per evaluated dataset whose published numbers are not comparable with ours, saying why."""
    notes = []
    for dataset in dict.fromkeys(datasets):
        found: dict[str, None] = {}
        for entry in published:
            if entry.dataset.lower() == dataset.lower():
                found.update(dict.fromkeys(_differences(entry, trained_on, conditions)))
        if found:
            notes.append(
                f"{dataset}: no Δ ours − published: the published numbers differ from ours in "
                + "; ".join(found)
                + ", so a difference would measure the setup, not the model"
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
    df: pd.DataFrame,
    published: Sequence[PublishedResult] = PUBLISHED_RESULTS,
    trained_on: str | None = None,
    conditions: Conditions | None = None,
) -> str:
    columns, rows, protocols = paper_table(df, published, trained_on, conditions)
    header = "| Method | " + " | ".join(f"{d} {crf_title(c)}" for d, c in columns) + " |"
    lines = [
        "PSNR (dB) / SSIM, 4x; published cells as their sources print them. "
        + MISSING
        + " = not evaluated / no published value / not comparable.",
        "",
        header,
        "|---|" + "---|" * len(columns),
    ]
    for name, cells in rows.items():
        lines.append(f"| {name} | " + " | ".join(MISSING if c is None else c for c in cells) + " |")
    lines.append("")
    for dataset, protocol in protocols.items():
        ours = _conditions_of(dataset, conditions or {})
        setup = "" if ours is None else f", {ours[0].upper()} input, scored on {ours[1]}"
        lines.append(f"- {dataset}: protocol `{protocol}`{setup}")
    lines += [f"- published numbers: {s}" for s in _published_sources(columns, published)]
    lines += [f"- {note}" for note in comparability_notes(protocols, published, trained_on, conditions)]
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    return text.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&").replace("#", r"\#")


def table_latex(
    df: pd.DataFrame,
    published: Sequence[PublishedResult] = PUBLISHED_RESULTS,
    trained_on: str | None = None,
    conditions: Conditions | None = None,
) -> str:
    """The paper-layout table as a booktabs `tabular` (needs `\\usepackage{booktabs}`)."""
    columns, rows, _ = paper_table(df, published, trained_on, conditions)
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
    """Per dataset and protocol: CRF x method (PSNR/SSIM) with FTVSR's delta vs each baseline; then per-clip PSNR."""
    summary = summarize(df)
    overall = summary[summary["clip"] == ALL_CLIPS]
    lines = [f"# Evaluation results (profile `{profile}`)", ""]
    for (dataset, protocol), rows in overall.groupby(["dataset", "protocol"], sort=False):
        present = set(rows["method"])
        methods: list[str] = [m for m in METHOD_ORDER if m in present] + sorted(present - set(METHOD_ORDER))
        # a Δ PSNR and Δ SSIM column pair per baseline evaluated beside FTVSR
        baselines = [b for b in BASELINES if b in present] if "ftvsr" in present else []
        lines += [f"## {dataset} (protocol `{protocol}`)", ""]
        header = "| CRF | " + " | ".join(METHOD_NAMES.get(m, m) for m in methods) + " |"
        header += "".join(f" Δ PSNR vs {METHOD_NAMES[b]} | Δ SSIM vs {METHOD_NAMES[b]} |" for b in baselines)
        lines += [header, "|---|" + "---|" * (len(methods) + 2 * len(baselines))]
        for crf in sorted(set(rows["crf"]), key=crf_sort_key):
            at = rows[rows["crf"] == crf]
            cells = {m: (float(r.psnr), float(r.ssim)) for m in methods for r in at[at["method"] == m].itertuples()}
            line = f"| {crf_title(crf)} | " + " | ".join(_fmt(cells.get(m)) for m in methods) + " |"
            for baseline in baselines:
                if "ftvsr" in cells and baseline in cells:
                    (p1, s1), (p0, s0) = cells["ftvsr"], cells[baseline]
                    line += f" {p1 - p0:+.2f} | {s1 - s0:+.4f} |"
                else:
                    line += f" {MISSING} | {MISSING} |"
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
    overall = overall_means(df)
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
        pub = [(x_of[c], float(e.psnr)) for c in crfs if (e := lookup(dataset, c, "FTVSR", tuple(published)))]
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
    styles = {"bicubic": ":", "lanczos": "-.", "ftvsr": "-"}
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


# --------------------------------------------------------------------------- DVC plot tables

# Under the report folder: plots/<kind>/<dataset>.csv, one wide table per dataset (a column per
# method), the layout `dvc plots` draws as one line per method. dvc.yaml's top-level `plots:`
# names these folders and columns.
PLOTS_DIR = "plots"
PLOT_KINDS = ("psnr_vs_crf", "rate_distortion")
PLOT_METHODS = METHOD_ORDER  # always a column (empty where not measured): dvc.yaml names them


def crf_number(crf: str) -> int | None:
    """The CRF as a number for a numeric axis: raw is 0 (x264's lossless level), "crf25" 25; else None."""
    label = crf_label(crf)
    if label == "raw":
        return 0
    return int(label[3:]) if label.startswith("crf") and label[3:].isdigit() else None


def _wide(rows: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """`rows` (index columns, method, psnr) as one PSNR column per method: bicubic, lanczos, ftvsr first."""
    wide = rows.pivot_table(index=index, columns="method", values="psnr", aggfunc="first")
    methods = list(PLOT_METHODS) + sorted(set(wide.columns) - set(PLOT_METHODS))
    return wide.reindex(columns=methods).reset_index().rename_axis(columns=None)


def plot_tables(df: pd.DataFrame, bitrates: pd.DataFrame) -> dict[str, dict[str, pd.DataFrame]]:
    """{kind: {dataset: wide table}} for `dvc plots`: PSNR against the numeric CRF, and against bitrate.

    psnr_vs_crf: columns crf (raw = 0), then the PSNR of each method. rate_distortion: bitrate_kbps
    (mean over the evaluated clips of the compressed LR), crf, then each method's PSNR; raw input,
    which has no bitrate, is left out.
    """
    table = psnr_vs_crf_table(df)
    table = table.assign(crf=table["crf"].map(crf_number)).dropna(subset=["crf"]).astype({"crf": int})
    points = rate_distortion_table(df, bitrates)
    points = points.assign(crf=points["crf"].map(crf_number)).dropna(subset=["crf"]).astype({"crf": int})
    tables: dict[str, dict[str, pd.DataFrame]] = {kind: {} for kind in PLOT_KINDS}
    for dataset, rows in table.groupby("dataset", sort=False):
        tables["psnr_vs_crf"][str(dataset)] = _wide(rows, ["crf"]).sort_values("crf")
    for dataset, rows in points.groupby("dataset", sort=False):
        tables["rate_distortion"][str(dataset)] = _wide(rows, ["bitrate_kbps", "crf"]).sort_values("bitrate_kbps")
    return tables


def _file_name(dataset: str) -> str:
    """A dataset name as a file name: anything but letters, digits, '.', '-', '_' becomes '_'."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in dataset) + ".csv"


def write_plot_tables(tables: Mapping[str, Mapping[str, pd.DataFrame]], plots_dir: Path) -> list[Path]:
    """Write `plot_tables` as plots_dir/<kind>/<dataset>.csv; tables of datasets no longer evaluated go."""
    written = []
    for kind, by_dataset in tables.items():
        folder = plots_dir / kind
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / _file_name(dataset) for dataset in by_dataset]
        for stale in set(folder.glob("*.csv")) - set(paths):  # a plot of them would still show
            stale.unlink()
        for path, wide in zip(paths, by_dataset.values(), strict=True):
            with atomic_path(path) as tmp:
                wide.to_csv(tmp, index=False, float_format="%.6f")
            written.append(path)
    return written


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


def _strip_font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=12)  # a TrueType font where Pillow has FreeType
    except (TypeError, OSError):
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    """`text` split at spaces into lines no wider than `width` (a single longer word keeps its own line)."""
    lines: list[str] = []
    for word in text.split(" "):
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(candidate, font=font) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


STRIP_GAP = 4  # pixels between and around the tiles
STRIP_LABEL_H = 18  # the least height of a text band (one line of the 12-pixel font)
STRIP_TEXT_TOP = 3  # from the top of a band to its first line


def make_strip(folders: Sequence[tuple[dict, Path]], crop: int = 128) -> Image.Image:
    """One image: a header band of column titles, then per clip a caption band and its crops side by side
    (one per `STRIP_COLUMNS` entry; a method without a saved frame gets a grey "n/a" tile).

    Every text sits in a band of its own, sized to its wrapped lines, so no pixel of a crop is
    covered. `image.info["tile_boxes"]` lists each tile as [row, column, left, top, right, bottom].
    """
    font = _strip_font()
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_h = math.ceil(draw.textbbox((0, 0), "Ågjy|", font=font)[3])  # from where a line is drawn to its lowest pixel
    line_h = text_h + 1
    gap = STRIP_GAP
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

    def band_height(lines: list[str]) -> int:
        return max(STRIP_LABEL_H, STRIP_TEXT_TOP + (len(lines) - 1) * line_h + text_h)

    # A column is as wide as its tiles, or as the longest word of a title where the tiles are narrower.
    words = [word for _key, title in STRIP_COLUMNS for word in title.split(" ")]
    col_w = max(max(size[1] for *_, size in tiles_by_row), *(int(draw.textlength(w, font=font)) + 4 for w in words))
    width = len(STRIP_COLUMNS) * col_w + (len(STRIP_COLUMNS) + 1) * gap
    titles = [_wrap(draw, title, font, col_w - 2) for _key, title in STRIP_COLUMNS]
    captions = []
    for info, *_ in tiles_by_row:
        parts = [info.get("dataset"), info["clip"], f"frame {info.get('frame', '?')}", crf_title(info["crf"])]
        captions.append(_wrap(draw, " / ".join(dict.fromkeys(str(p) for p in parts if p)), font, width - 2 * gap))
    header_h = max(band_height(lines) for lines in titles)
    height = (
        header_h
        + sum(band_height(c) + size[0] + gap for c, (*_, size) in zip(captions, tiles_by_row, strict=True))
        + gap
    )

    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    text: list[tuple[tuple[int, int], list[str]]] = []  # drawn after the tiles, so an overlap would show
    boxes = []
    for c, lines in enumerate(titles):
        text.append(((gap + c * (col_w + gap) + 2, STRIP_TEXT_TOP), lines))
    y = header_h
    for r, ((_info, row, (th, tw)), caption) in enumerate(zip(tiles_by_row, captions, strict=True)):
        text.append(((gap + 2, y + STRIP_TEXT_TOP), caption))
        y += band_height(caption)
        for c, tile in enumerate(row):
            x = gap + c * (col_w + gap) + (col_w - tw) // 2
            if tile is None:
                draw.rectangle([x, y, x + tw - 1, y + th - 1], fill=(200, 200, 200))
                text.append(((x + 4, y + 4), ["n/a"]))
            else:
                canvas.paste(Image.fromarray(tile), (x, y))
            boxes.append([r, c, x, y, x + tw, y + th])
        y += th + gap
    for (x, top), lines in text:
        for k, line in enumerate(lines):
            draw.text((x, top + k * line_h), line, fill="black", font=font)
    canvas.info["tile_boxes"] = json.dumps(boxes)
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
        metadata = PngInfo()  # where the tiles are, for tools that cut them out again
        metadata.add_text("tile_boxes", image.info["tile_boxes"])
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG", pnginfo=metadata)
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
    conditions: Conditions | None = None,
    strip_crop: int = 128,
) -> dict[str, Path]:
    """Write the report's tables, plots and strips into `out_dir`; returns the written paths by name.

    `results`: per-frame results (folders written by `write_results`, their frames.csv, or
    DataFrames from `evaluate_set`), any mix of datasets, CRFs and protocols. `bitrate_tables`:
    CRF (or (dataset, CRF)) -> the compress stage's `bitrate.csv`. `strips_dir`: where
    `evaluate_set(save_frames_dir=...)` saved frames (searched recursively for `info.json`).
    `trained_on`: the model's training set (a `TRAINING_SETS` name); `conditions`: dataset ->
    (degradation, channel) of our evaluation (`evaluation_conditions(params)`). A published number
    gets a Δ only where both match it (`paper_table`); None leaves that part unchecked.
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
    notes += comparability_notes(df["dataset"], published, trained_on, conditions)
    written["table_md"] = out_dir / "table.md"
    write_text_atomic(written["table_md"], table_markdown(df, published, trained_on, conditions))
    written["table_tex"] = out_dir / "table.tex"
    write_text_atomic(written["table_tex"], table_latex(df, published, trained_on, conditions))

    written["psnr_vs_crf"] = out_dir / "psnr_vs_crf.png"
    _save_figure(plot_psnr_vs_crf(table, published), written["psnr_vs_crf"])

    bitrates = read_bitrates(bitrate_tables or {})
    points = rate_distortion_table(df, bitrates)
    if points.empty:
        notes.append("rate-distortion plot: no bitrate table matched the evaluated clips")
    written["rate_distortion"] = out_dir / "rate_distortion.png"
    _save_figure(plot_rate_distortion(points), written["rate_distortion"])
    for path in write_plot_tables(plot_tables(df, bitrates), out_dir / PLOTS_DIR):
        written[f"{path.parent.name}/{path.stem}"] = path

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
