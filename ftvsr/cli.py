"""The `ftvsr` command: parse, call the library, report. No logic lives here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ftvsr.data.published_results import TRAINING_SETS
from ftvsr.errors import FTVSRError
from ftvsr.params import PARAMS_FILE, activate_profile, load_params

app = typer.Typer(
    help="FTVSR: compressed video super-resolution, from data to paper tables.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ParamsOption = Annotated[Path, typer.Option("--params", help="params file")]
Workers = Annotated[int, typer.Option(min=1, help="clips processed in parallel")]


@app.command()
def profile(
    name: Annotated[str, typer.Argument(help="sample, paper or paper-vimeo (profiles/NAME.yaml)")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="KEY=VALUE (YAML value) over the profile, e.g. train.iterations=4; repeatable"),
    ] = None,
) -> None:
    """Make a profile (profiles/NAME.yaml) the active params.yaml, optionally with settings overridden."""
    activate_profile(name, set_ or [])
    typer.echo(f"params.yaml is now profile {name!r}" + (f" with {len(set_)} settings overridden" if set_ else ""))


@app.command()
def fetch(
    dataset: Annotated[str, typer.Argument(help="sample, reds, vid4, vimeo90k or spynet")],
    root: Annotated[Path, typer.Option(help="where to put it (sample: the HR root)")] = Path("data"),
    mirror: Annotated[
        str | None, typer.Option(help="base URL serving <dataset>/<file> instead of the publisher")
    ] = None,
    params: ParamsOption = PARAMS_FILE,
) -> None:
    """Fetch a dataset: the embedded sample (clips from params.yaml) or a download."""
    if dataset == "sample":
        from ftvsr.data.sample import fetch_clip

        data = load_params(params).data
        for name in data.train_clips:
            fetch_clip(root / "train" / name, data.sample[name])
        for test_set, clips in data.test_sets.items():
            for name in clips:
                fetch_clip(root / "test" / test_set / name, data.sample[name])
        typer.echo(f"sample clips written under {root}")
        return
    from ftvsr.data.download import fetch_dataset

    for path in fetch_dataset(dataset, root, mirror=mirror):
        typer.echo(str(path))


@app.command()
def degrade(
    src: Annotated[Path, typer.Argument(help="folder of clip folders of HR frames")],
    dst: Annotated[Path, typer.Argument(help="output folder, same layout")],
    method: Annotated[str, typer.Option(help="bd (Gaussian blur sigma 1.6) or bi (bicubic)")] = "bd",
    scale: Annotated[int, typer.Option(help="downscaling factor")] = 4,
    workers: Workers = 1,
) -> None:
    """Degrade HR clips to LR exactly as the published MATLAB recipes."""
    from ftvsr.data.degrade import degrade_folder

    done = degrade_folder(src, dst, method=method, scale=scale, workers=workers)
    typer.echo(f"{len(done)} clips degraded into {dst}")


@app.command()
def compress(
    src: Annotated[Path, typer.Argument(help="folder of clip folders of LR frames")],
    dst: Annotated[Path, typer.Argument(help="output folder: frames, .mp4 and bitrate.csv")],
    crf: Annotated[int, typer.Option(help="x264 constant rate factor, 0..51")],
    codec: str = "libx264",
    preset: str = "medium",
    pix_fmt: str = "yuv420p",
    fps: float = 25.0,
    workers: Workers = 1,
) -> None:
    """H.264-compress LR clips at one CRF and decode them back to frames."""
    from ftvsr.data.compress import compress_folder

    table = compress_folder(src, dst, crf, codec=codec, preset=preset, pix_fmt=pix_fmt, fps=fps, workers=workers)
    typer.echo(table.to_string(index=False))


@app.command()
def pack(
    src: Annotated[Path, typer.Argument(help="folder of clip folders")],
    dst: Annotated[Path, typer.Argument(help="the LMDB to write (DST.lmdb)")],
    verify: Annotated[bool, typer.Option(help="read every frame back and compare")] = False,
) -> None:
    """Pack frames into an LMDB (BasicSR layout, meta_info.txt)."""
    from ftvsr.io.lmdb_store import pack_lmdb

    typer.echo(str(pack_lmdb(src, dst, verify=verify)))


@app.command("train")
def train_command(
    lmdb: Annotated[Path, typer.Option(help="folder of hr.lmdb and <level>.lmdb (the pack stage's output)")],
    out: Annotated[Path, typer.Option(help="the trained model")] = Path("models/ftvsr.pth"),
    work_dir: Annotated[Path, typer.Option(help="checkpoints, resumed from when present")] = Path("checkpoints"),
    nproc: Annotated[
        int | None, typer.Option(min=1, help="processes on this machine (torchrun, DDP; default: train.nproc)")
    ] = None,
    params: ParamsOption = PARAMS_FILE,
) -> None:
    """Train FTVSR with the settings of params.yaml (the published recipe in profile paper)."""
    from ftvsr.launch import run_training

    run_id = run_training(params, lmdb, out, work_dir, nproc=nproc)
    typer.echo(f"model: {out}" + (f"  (MLflow run {run_id})" if run_id else ""))


def _model(weights: Path, released: str | None):
    from ftvsr.models import load_model, load_released

    return load_released(weights, released) if released else load_model(weights)


Released = Annotated[str | None, typer.Option(help="the weights are a released checkpoint: reds or vimeo90k")]


@app.command()
def evaluate(
    weights: Annotated[Path, typer.Option(help="our checkpoint, or a released one with --released")],
    dataset: Annotated[
        str, typer.Option(help="a prepared test set (carphone, reds4, vid4) or a FOLDER with hr/ and lr/<level>/")
    ],
    crf: Annotated[list[str] | None, typer.Option(help="raw or a CRF; repeat for several (default: raw)")] = None,
    released: Released = None,
    data_root: Annotated[Path | None, typer.Option(help="prepared data (default: data/<profile>)")] = None,
    out: Annotated[Path, typer.Option(help="results folder: <out>/<dataset>/<crf>/")] = Path("results/manual"),
    protocol: Annotated[str | None, typer.Option(help="full or published (default: params)")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:1, ... (default: evaluate.device)")] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option("--report", help="then rebuild the tables and figures from every result under --out here"),
    ] = None,
    params: ParamsOption = PARAMS_FILE,
) -> None:
    """Evaluate a model, bicubic and Lanczos on a test set at one or more compression levels."""
    from ftvsr.evaluate import evaluate_level
    from ftvsr.inference import resolve_device
    from ftvsr.results import metrics_dict

    settings = load_params(params)
    target = resolve_device(settings.evaluate.device if device is None else device)  # a missing one: one line
    folder = Path(dataset)
    if folder.is_dir():
        name, hr, lr_root = folder.name, folder / "hr", folder / "lr"
    else:
        root = data_root or Path("data") / settings.profile
        name, hr, lr_root = dataset, root / "hr" / "test" / dataset, root / "lr"
    model = _model(weights, released)
    for level in crf or ["raw"]:
        lr = lr_root / level if folder.is_dir() else lr_root / level / "test" / dataset
        frames = evaluate_level(
            lr,
            hr,
            out / name / level,
            model=model,
            dataset=name,
            crf=level,
            settings=settings.evaluate,
            protocol=protocol,
            device=target,
        )
        typer.echo(f"{name} {level}: {metrics_dict(frames)}")
    if report_dir is not None:
        _report(out, report_dir, None, params)


@app.command()
def report(
    results: Annotated[Path, typer.Option(help="folder of <dataset>/<crf>/ evaluation results")],
    out: Annotated[Path, typer.Option(help="where the tables and figures go")],
    bitrates: Annotated[Path | None, typer.Option(help="LR root with each level's bitrate.csv")] = None,
    params: ParamsOption = PARAMS_FILE,
) -> None:
    """Paper-layout tables (markdown, LaTeX), plots and visual strips from evaluation results."""
    _report(results, out, bitrates, params)


def _report(results: Path, out: Path, bitrates: Path | None, params: Path) -> None:
    from ftvsr.report import build_report, evaluation_conditions

    folders = sorted(p.parent for p in results.glob("*/*/frames.csv"))
    if not folders:
        raise FTVSRError(f"no evaluation results (<dataset>/<crf>/frames.csv) under {results}")
    tables = {}
    if bitrates is not None:
        tables = {(p.parent.name, p.parents[2].name): p for p in bitrates.glob("*/test/*/bitrate.csv")}
    settings = load_params(params)
    written = build_report(
        folders,
        out,
        bitrate_tables=tables,
        strips_dir=results,
        profile=settings.profile,
        trained_on=TRAINING_SETS[settings.data.source],
        conditions=evaluation_conditions(settings),
    )
    typer.echo("\n".join(str(p) for p in written.values()))


@app.command()
def compare(
    entries: Annotated[list[str], typer.Argument(help="checkpoints (.pth) or MLflow run ids")],
    dataset: Annotated[str, typer.Option(help="a prepared test set")] = "carphone",
    crf: Annotated[list[str] | None, typer.Option(help="raw or a CRF; repeat for several (default: raw)")] = None,
    data_root: Annotated[Path | None, typer.Option(help="prepared data (default: data/<profile>)")] = None,
    params: ParamsOption = PARAMS_FILE,
) -> None:
    """Compare trained models or MLflow runs on the same evaluation (ablations)."""
    from ftvsr.compare import EvalSet, compare_models, format_comparison
    from ftvsr.evaluate import profile_options

    settings = load_params(params)
    root = data_root or Path("data") / settings.profile
    sets = [
        EvalSet(dataset, level, root / "lr" / level / "test" / dataset, root / "hr" / "test" / dataset)
        for level in crf or ["raw"]
    ]
    # checkpoints are scored and run as the evaluate stage does
    table = compare_models(entries, sets, mlflow=settings.mlflow, **profile_options(settings.evaluate, dataset))
    typer.echo(format_comparison(table))


@app.command()
def upscale(
    input: Annotated[Path, typer.Argument(help="a folder of frames or a video file")],
    output: Annotated[Path, typer.Argument(help="a folder for PNG frames, or a video file (.mp4)")],
    weights: Annotated[Path, typer.Option(help="our checkpoint, or a released one with --released")],
    released: Released = None,
    chunk: Annotated[
        int | None, typer.Option(min=1, help="frames per temporal chunk, at most (default: the whole clip)")
    ] = None,
    chunk_overlap: Annotated[
        int, typer.Option(min=0, help="frames shared by consecutive chunks (each side of a seam gets half)")
    ] = 2,  # ftvsr.inference.CHUNK_OVERLAP, not imported here: the CLI imports torch only when it runs
    tile: Annotated[
        int | None, typer.Option(min=1, help="LR tile size in pixels for large frames (default: whole frames)")
    ] = None,
    tile_overlap: Annotated[int, typer.Option(min=0, help="LR pixels shared by neighbouring tiles")] = 16,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
    fp16: Annotated[bool, typer.Option("--fp16", help="float16 autocast (GPU)")] = False,
    bf16: Annotated[bool, typer.Option("--bf16", help="bfloat16 autocast (GPU)")] = False,
    crf: Annotated[int, typer.Option(help="CRF of an output video")] = 18,
) -> None:
    """Super-resolve a clip 4x."""
    import torch

    from ftvsr.inference import resolve_device, super_resolve
    from ftvsr.io.frames import read_clip, write_clip
    from ftvsr.io.video import read_video, write_video

    if fp16 and bf16:
        raise FTVSRError("choose one of --fp16 and --bf16")
    amp = torch.float16 if fp16 else torch.bfloat16 if bf16 else None
    target = resolve_device(device)  # before any work: a missing device is one line
    model = _model(weights, released)
    frames = read_clip(input) if input.is_dir() else read_video(input)
    sr = super_resolve(
        model,
        frames,
        chunk=chunk,
        chunk_overlap=chunk_overlap,
        tile=tile,
        tile_overlap=tile_overlap,
        device=target,
        amp_dtype=amp,
        progress=True,
    )
    if output.suffix.lower() in {".mp4", ".mkv", ".mov", ".avi"}:
        write_video(output, sr, crf)
    else:
        write_clip(output, sr)
    typer.echo(f"{len(sr)} frames of {sr.shape[2]}x{sr.shape[1]} written to {output}")


@app.command("serve")
def serve_command(
    api: Annotated[
        str | None, typer.Option(help="Prefect API URL (default: PREFECT_API_URL, else http://127.0.0.1:4200/api)")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="flow runs at a time (default: no limit)")] = None,
    params: ParamsOption = PARAMS_FILE,
) -> None:
    """Serve the pipeline and every stage as Prefect deployments: start runs from the UI (Ctrl-C stops)."""
    from pipelines.serve import serve  # the orchestration layer, imported only here: ftvsr stays Prefect-free

    serve(params_file=params, api=api, limit=limit)


def main() -> None:
    """Entry point: a user-fixable error is one line on stderr and exit code 1."""
    try:
        app()
    except FTVSRError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
