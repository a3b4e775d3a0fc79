"""The `ftvsr` command: parse, call the library, report. No logic lives here."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ftvsr.errors import FTVSRError
from ftvsr.params import PARAMS_FILE, PROFILES_DIR, load_params

app = typer.Typer(
    help="FTVSR: compressed video super-resolution, from data to paper tables.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ParamsOption = Annotated[Path, typer.Option("--params", help="params file")]
Workers = Annotated[int, typer.Option(min=1, help="clips processed in parallel")]


@app.command()
def profile(name: Annotated[str, typer.Argument(help="sample or paper")]) -> None:
    """Make a profile (profiles/NAME.yaml) the active params.yaml."""
    preset = PROFILES_DIR / f"{name}.yaml"
    if not preset.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise FTVSRError(f"unknown profile {name!r}: known ones are {known}")
    load_params(preset)  # never activate an invalid preset
    shutil.copyfile(preset, PARAMS_FILE)
    typer.echo(f"params.yaml is now profile {name!r}")


@app.command()
def fetch(
    dataset: Annotated[str, typer.Argument(help="sample, reds, vid4, vimeo90k or spynet")],
    root: Annotated[Path, typer.Option(help="where to put it (sample: the HR root)")] = Path("data"),
    mirror: Annotated[Optional[str], typer.Option(help="base URL serving <dataset>/<file> instead of the publisher")] = None,
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


def main() -> None:
    """Entry point: a user-fixable error is one line on stderr and exit code 1."""
    try:
        app()
    except FTVSRError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)
